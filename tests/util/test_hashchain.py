from inspector.util.canonical import canonical_json, sha256_text
from inspector.util.hashchain import GENESIS, Link, link_hash, walk


def _chain(contents):
    links, prev = [], GENESIS
    for c in contents:
        h = link_hash(prev, c)
        links.append({"prev": prev, "hash": h, "content": c})
        prev = h
    return links


def _check(links):
    prev = GENESIS
    out = []
    for l in links:
        out.append(Link(l["prev"], l["hash"], link_hash(l["prev"], l["content"])))
        prev = l["hash"]
    return walk(out)


def test_link_hash_is_prev_plus_canonical_content():
    assert link_hash(GENESIS, [1, "a"]) == sha256_text(GENESIS + canonical_json([1, "a"]))


def test_intact_chain_holds_and_reports_its_head():
    links = _chain(["a", "b", "c"])
    r = _check(links)
    assert r.ok and r.links == 3 and r.head == links[-1]["hash"]


def test_edit_is_found_at_the_edited_link():
    links = _chain(["a", "b", "c"])
    links[1]["content"] = "B"
    r = _check(links)
    assert not r.ok and r.bad_link == 2 and "edited" in r.problem and r.head == links[0]["hash"]


def test_removal_and_reorder_are_found():
    links = _chain(["a", "b", "c"])
    r = _check([links[0], links[2]])
    assert not r.ok and r.bad_link == 2 and "removed" in r.problem
    r = _check([links[1], links[0], links[2]])
    assert not r.ok and r.bad_link == 1


def test_empty_chain():
    r = walk([])
    assert r.ok and r.links == 0 and r.head == GENESIS
