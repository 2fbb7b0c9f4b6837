"""The optional OPC UA server, read by a real asyncua client on loopback."""

from __future__ import annotations

import asyncio
import time

import pytest

from helpers.mes_testkit import free_port, make_record

pytest.importorskip("asyncua", reason="the OPC UA output needs asyncua (pip install 'inspector-station[opcua]')")

from inspector.mes.opcua import NAMESPACE, VisionServer  # noqa: E402


async def read_all(url: str) -> dict:
    from asyncua import Client

    async with Client(url=url, timeout=5) as client:
        idx = await client.get_namespace_index(NAMESPACE)
        vs = await client.nodes.objects.get_child(f"{idx}:VisionSystem")

        async def value(*path: str):
            node = await vs.get_child([f"{idx}:{p}" for p in path])
            return await node.read_value()

        return {
            "station": await value("StationId"),
            "state": await value("VisionStateMachine", "CurrentState"),
            "config": await value("ConfigurationManagement", "ActiveConfiguration", "ConfigurationId"),
            "recipe": await value("RecipeManagement", "ActiveRecipe", "ExternalId"),
            "result_id": await value("ResultManagement", "LatestResult", "ResultId"),
            "verdict": await value("ResultManagement", "LatestResult", "Verdict"),
            "is_pass": await value("ResultManagement", "LatestResult", "IsPass"),
            "wafer": await value("ResultManagement", "LatestResult", "Wafer"),
            "die_x": await value("ResultManagement", "LatestResult", "DieX"),
            "defects": await value("ResultManagement", "LatestResult", "DefectCount"),
            "count": await value("ResultManagement", "Statistics", "ResultCount"),
            "fails": await value("ResultManagement", "Statistics", "FailCount"),
        }


def test_state_config_and_latest_result_are_readable():
    url = f"opc.tcp://127.0.0.1:{free_port()}/inspector"
    state = {"v": "running"}
    server = VisionServer(url, station="fab-1", station_name="Fab 1", config_hash="c" * 64,
                          state=lambda: state["v"], interval_s=0.05).start()
    try:
        server.publish_result(make_record("run-a", 1, 0, ["x"], verdict="pass").outbox[0].body)
        server.publish_result(make_record("run-a", 2, 0, ["x"]).outbox[0].body)
        time.sleep(0.2)
        v = asyncio.run(read_all(url))
        assert v["station"] == "fab-1" and v["state"] == "running"
        assert v["config"] == v["recipe"] == "c" * 64
        assert v["result_id"] == "st-1/run-a/f00002" and v["verdict"] == "fail" and v["is_pass"] is False
        assert (v["wafer"], v["die_x"], v["defects"], v["count"], v["fails"]) == ("W0", 2, 1, 2, 1)
        state["v"] = "stopped"
        time.sleep(0.2)
        assert asyncio.run(read_all(url))["state"] == "stopped"
    finally:
        server.stop()


def test_bad_endpoint_is_refused():
    with pytest.raises(ValueError, match="opc.tcp://host:port"):
        VisionServer("http://127.0.0.1:4840", station="s")
