"""Queries egressd sends upstream (the DNS forwarder's and its own
resolver's) are hard to spoof (RFC 5452): a random id per query and a random
source port per query (per lookup for the resolver, whose A and AAAA share
one, as glibc's do), and only an answer with the query's id and question, from
the upstream's address and port, is taken. The test's FakeDns records the id
and source port of every query and, asked to, races each real answer with
forgeries naming SPOOFED_ADDRESS."""
from fakedns import SPOOFED_ADDRESS
from netns_helpers import Agent


def first_queries(env, names):
    # The first query for each (name, type): a client that times out under a
    # loaded run asks again, and that retry is a query of its own.
    first = {}
    for qid, port, name, qtype in env.dns.sources:
        if name in names:
            first.setdefault((name, qtype), (qid, port))
    return first


def ids_and_ports(env, names):
    seen = list(first_queries(env, names).values())
    return [qid for qid, _ in seen], [port for _, port in seen]


def assert_unpredictable(ids, ports, count):
    assert len(ids) == count, ids
    steps = [(b - a) % 65536 for a, b in zip(ids, ids[1:])]
    assert steps.count(1) <= 1, ids  # not a counter
    assert len(set(ids)) >= count - 1, ids
    # A socket of its own per query (or lookup): the kernel picks a random
    # ephemeral port.
    assert len(set(ports)) >= len(ports) - 1, ports


def test_forwarded_queries_have_random_ids_and_ports(env):
    names = [f"fwd{i}.test" for i in range(12)]
    for name in names:
        env.dns.records[name] = ["127.0.0.1"]
    agent = Agent(env.daemon.run_prefix("--policy", "open", "--netns", "host"))
    try:
        for name in names:
            assert agent.ask("dns", name, "127.0.0.1", "udp") == "rcode=0 127.0.0.1"
    finally:
        assert agent.close() == 0
    ids, ports = ids_and_ports(env, set(names))
    assert_unpredictable(ids, ports, len(names))


def test_resolver_queries_have_random_ids_and_ports(env):
    names = [f"res{i}.test" for i in range(6)]
    for name in names:
        env.dns.records[name] = ["127.0.0.1"]
    sb = env.sandbox("open")
    for name in names:
        # egressd resolves the name itself (A and AAAA) to pick the upstream address.
        r = sb.curl(f"http://{name}:{env.http.port}/")
        assert r.returncode == 0 and f"host={name}" in r.stdout, r.stderr
    first = first_queries(env, set(names))
    assert len(first) == 2 * len(names), first  # A and AAAA for each
    ids = [qid for qid, _ in first.values()]
    # A lookup's two questions leave from one socket; each lookup has its own.
    ports = []
    for name in names:
        by_type = {port for (n, _), (_, port) in first.items() if n == name}
        assert len(by_type) == 1, (name, first)
        ports += list(by_type)
    assert_unpredictable(ids, ports, 2 * len(names))


def test_forged_answers_are_ignored_and_counted(env):
    env.dns.records["spoofed-fwd.test"] = ["127.0.0.1"]
    env.dns.records["spoofed-res.test"] = ["127.0.0.1"]
    before = env.daemon.status()
    env.dns.spoof = True
    try:
        # The forwarder: the sandbox gets the real answer, never a forged one.
        agent = Agent(env.daemon.run_prefix("--policy", "open", "--netns", "host"))
        try:
            assert agent.ask("dns", "spoofed-fwd.test", "127.0.0.1", "udp") == "rcode=0 127.0.0.1"
            assert agent.ask("dns", "spoofed-fwd.test", "127.0.0.1", "tcp") == "rcode=0 127.0.0.1"
        finally:
            assert agent.close() == 0
        # egressd's resolver: a forged address would send the request to
        # SPOOFED_ADDRESS (nothing listens there: 502); the real one reaches the origin.
        sb = env.sandbox("open")
        r = sb.curl(f"http://spoofed-res.test:{env.http.port}/")
        assert r.returncode == 0 and "host=spoofed-res.test" in r.stdout, (r.stdout, r.stderr)
    finally:
        env.dns.spoof = False
    after = env.daemon.status()
    # Per query: wrong id, wrong question, wrong type (the one from another
    # port never reaches the query's socket: the kernel drops it).
    assert after["dns"]["upstream_mismatched"] - before["dns"]["upstream_mismatched"] >= 2 * 3
    assert after["resolver"]["upstream_mismatched"] - before["resolver"]["upstream_mismatched"] >= 2 * 3
