"""MES / line-control outputs: a durable outbox fed by the store, forwarders per transport.

- :mod:`inspector.mes.outbox`: the ``outbox`` table API (written in the decision's transaction);
- :mod:`inspector.mes.forwarder`: delivery threads (order per stream, retries, back-off);
- :mod:`inspector.mes.http`, :mod:`~inspector.mes.mqtt`, :mod:`~inspector.mes.filedrop`: transports;
- :mod:`inspector.mes.payload`: the unit / wafer result JSON; :mod:`inspector.mes.klarf`: KLARF files;
- :mod:`inspector.mes.opcua`: optional OPC UA server; :mod:`inspector.mes.hub`: all of it from config.

Optional packages (paho-mqtt, asyncua) are imported only when a config asks for them.
See docs/mes.md.
"""
