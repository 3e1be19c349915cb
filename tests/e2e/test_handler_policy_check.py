"""`egressctl policy check` on policies with handlers: a valid file passes, and
every mistake is reported at its file:line:column (the real CLI, no daemon)."""
import subprocess

from conftest import EGRESSCTL

GOOD = """name: hosted
handlers:
  github-auth:
    - set_header: {name: Authorization, value: "Bearer {{secret:github_token}}"}
  allow-hosts:
    - allow_hosts: "{{params.hostnames}}"
  no-http:
    - deny: {body: "network locked after setup"}
by_host:
  "api.github.com": github-auth
catch_all: {handler: allow-hosts, params: {hostnames: ["github.com", "registry.npmjs.org"]}}
"""

BAD = """name: broken
handlers:
  h:
    - set_headers: {name: A, value: b}
    - set_header: {name: Host, value: x}
    - deny: {status: 302}
    - allow_hosts: ["{{secret:token}}"]
    - set_query: {name: q, value: "{{nope}}"}
  gh:
    - set_header: {name: Authorization, value: "Bearer {{secret:t}}"}
by_host:
  a.com: gj
catch_all: gh
"""


def check(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    r = subprocess.run([EGRESSCTL, "policy", "check", str(path)], capture_output=True, text=True,
                       timeout=30)
    return path, r


def test_handler_policy_passes(tmp_path):
    _, r = check(tmp_path, "good.yaml", GOOD)
    assert r.returncode == 0, r.stderr
    assert "ok" in r.stdout


def test_handler_mistakes_have_line_and_column(tmp_path):
    path, r = check(tmp_path, "bad.yaml", BAD)
    assert r.returncode == 1
    want = [
        f'{path}:4:7: error: handler "h" step 1: unknown step the string "set_headers"; '
        'did you mean "set_header"?',
        f'{path}:5:26: error: handler "h" step 2 (set_header): header "Host" is managed by egressd',
        f'{path}:6:22: error: handler "h" step 3 (deny): status must be a refusal status, 400 to 599',
        f'{path}:7:21: error: handler "h" step 4 (allow_hosts): {{{{secret:...}}}} belongs in '
        'set_header, set_query and basic_auth values',
        f'{path}:8:35: error: handler "h" step 5 (set_query): value: unknown placeholder "{{{{nope}}}}"',
        f'{path}:12:10: error: by_host "a.com": handler "gj" is not defined; did you mean "gh"?',
        f'{path}:13:12: error: catch_all: handler "gh" adds a credential',
    ]
    lines = r.stderr.splitlines()
    assert len(lines) == len(want), r.stderr
    for line, prefix in zip(lines, want):
        assert line.startswith(prefix), f"{line!r} does not start with {prefix!r}"
