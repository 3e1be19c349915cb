#include "tools/egressctl/usage.h"

#include <array>
#include <utility>

namespace egressctl {
namespace {

constexpr const char* kFullUsage = R"(usage: egressctl [--socket PATH] COMMAND [ARGS]
       egressctl COMMAND --help | --help | --version

commands:
  status [--json]                          daemon status
  run --policy NAME|FILE [--instance ID] [--user USER] [--netns new|host] -- CMD [ARGS...]
                                           run CMD in a new sandbox under the policy; exits
                                           with CMD's status (128+N for signal N, 125 when
                                           the sandbox could not be set up)
  attach CGROUP --policy NAME|FILE [--instance ID] [--netns PATH|host] [--json]
                                           put a cgroup under a policy (again: switch policy)
  detach CGROUP|INSTANCE [--json]          remove the policy from a cgroup
  list [--json]                            attached sandboxes
  stats [CGROUP|INSTANCE] [--json]         per-sandbox kernel and proxy counters (also
                                           the final ones of the last 64 that ended)
  events [--follow] [--json] [--instance ID]
                                           every deny (kernel, proxy, dns), oldest first;
                                           --follow waits out a daemon restart (60 s)
  policy check FILE [--json]               validate a policy file (no daemon needed)
  policy reload [--json]                   re-read every attached policy, all or nothing
  policy suggest --instance ID [--json]    a policy allowing what an audit-mode instance did
  ca INSTANCE [--json]                     the sandbox's CA certificate (PEM), to trust it
  handler set INSTANCE NAME [--host GLOB] [--params JSON]
                                           bind a policy handler for this instance: to the
                                           hosts matching GLOB, or (no --host) to every
                                           other request; the next request follows it
  handler clear INSTANCE [--host GLOB]     remove that binding (no --host: the catch-all)
  handler list INSTANCE [--json]           the bindings in effect, instance and policy
  hosts allow|deny|remove INSTANCE GLOB... the instance's own host lists (joined to the
                                           policy's; denied wins; allow makes it deny by
                                           default); open tunnels to hosts denied now close
  hosts clear INSTANCE | list INSTANCE [--json]
  secret set NAME [--instance ID]          store a handler secret; the value is read from
                                           stdin (never an argument), one trailing newline
                                           stripped; --instance: for that instance only
  secret rm NAME [--instance ID]           remove a secret
  secret list [--instance ID] [--json]     names, scopes, change times, problems (no values)

CGROUP is a cgroup v2 directory, absolute or relative to the cgroup2 mount.
--policy takes a policy name in the daemon's --policy-dir, or a path to a
YAML file (anything containing '/' or ending in .yaml/.yml).
--socket PATH: the daemon's control socket; default $EGRESSD_SOCKET, else
/run/egressd/egressd.sock (--socket wins over the variable).
--json: one JSON document on stdout, for every command that prints (handler
and hosts print the lists after the change); run and secret set/rm print
nothing of their own and refuse it.
Exit status: 2 for a usage error, 1 when egressd refuses or cannot be reached.
attach --netns: the sandbox's network namespace (/proc/PID/ns/net,
/run/netns/NAME); by default the one all the cgroup's processes share.
)";

// One entry per command: its usage lines, then what it does.
constexpr std::array<std::pair<std::string_view, const char*>, 12> kCommands{{
    {"status", R"(usage: egressctl status [--json]

The daemon's status as JSON: pid, version, socket, state dir, proxy port,
sandbox count, counters. --json prints it on one line.
)"},
    {"run",
     R"(usage: egressctl run --policy NAME|FILE [--instance ID] [--user USER] [--netns new|host] -- CMD [ARGS...]

Runs CMD in a new sandbox (a cgroup under the daemon's --cgroup-root) under
the policy, and removes the sandbox when CMD exits. stdout is CMD's: run
prints nothing of its own there (no --json).
  --policy NAME|FILE  a policy of the daemon's --policy-dir, or a YAML file
  --instance ID       the name in list, stats and events (default run-XXXXXXXX)
  --user USER         run CMD as USER (default: root with a container's capabilities)
  --netns new|host    a network namespace of its own (default) or the host's
Exit status: CMD's (128+N when it died of signal N); 125 the sandbox could
not be set up; 126/127 CMD could not be run / was not found; 2 usage error.
)"},
    {"attach",
     R"(usage: egressctl attach CGROUP --policy NAME|FILE [--instance ID] [--netns PATH|host] [--json]

Puts an existing cgroup under a policy; attached again, it switches the
policy. Sockets the cgroup opened before (peer not loopback) are closed.
  --netns PATH|host  the sandbox's network namespace (/proc/PID/ns/net,
                     /run/netns/NAME); default: the one its processes share
)"},
    {"detach", R"(usage: egressctl detach CGROUP|INSTANCE [--json]

Removes the policy from a cgroup. An attached cgroup and its processes stay;
a sandbox of `run` is killed and removed.
)"},
    {"list", R"(usage: egressctl list [--json]

The attached sandboxes: id, instance, policy, mode, network namespace,
cgroup, and any problem (a policy that could not be loaded).
)"},
    {"stats", R"(usage: egressctl stats [CGROUP|INSTANCE] [--json]

Per-sandbox kernel and proxy counters, also the final ones of the last 64
sandboxes that ended.
)"},
    {"events", R"(usage: egressctl events [--follow] [--json] [--instance ID]

Every deny (kernel, proxy, dns), oldest first. --follow keeps printing new
ones and waits out a daemon restart (60 s). --json: one object per line.
)"},
    {"policy", R"(usage: egressctl policy check FILE [--json]
       egressctl policy reload [--json]
       egressctl policy suggest --instance ID [--json]

check    validates a policy file, offline (every error with line and column)
reload   re-reads every attached sandbox's policy, all or nothing (as SIGHUP)
suggest  prints a policy allowing what an audit-mode instance did
)"},
    {"ca", R"(usage: egressctl ca INSTANCE [--json]

The sandbox's CA certificate (PEM), to trust it inside the sandbox; never its key.
)"},
    {"handler", R"(usage: egressctl handler set INSTANCE NAME [--host GLOB] [--params JSON] [--json]
       egressctl handler clear INSTANCE [--host GLOB] [--json]
       egressctl handler list INSTANCE [--json]

Binds a handler of the instance's policy to the hosts matching GLOB, or (no
--host) to every other request; the next request follows it.
)"},
    {"hosts", R"(usage: egressctl hosts allow|deny|remove INSTANCE GLOB... [--json]
       egressctl hosts clear INSTANCE [--json]
       egressctl hosts list INSTANCE [--json]

The instance's own host lists, joined to the policy's (denied wins; allow
makes it deny by default). Open tunnels to hosts denied now are closed.
)"},
    {"secret", R"(usage: egressctl secret set NAME [--instance ID]
       egressctl secret rm NAME [--instance ID]
       egressctl secret list [--instance ID] [--json]

set reads the value from stdin (never an argument), one trailing newline
stripped; --instance: for that instance only.
)"},
}};

}  // namespace

const char* FullUsage() {
  return kFullUsage;
}

const char* CommandUsage(std::string_view command) {
  for (const auto& [name, usage] : kCommands)
    if (name == command) return usage;
  return nullptr;
}

}  // namespace egressctl
