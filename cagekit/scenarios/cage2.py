"""The CAGE-2 challenge network (CybORG's Scenario2), written as our own data.

13 hosts in three subnets: User (red's foothold User0 and four workstations), Enterprise (three servers and
the Defender, which runs the blue monitoring server) and Operational (three gateways and Op_Server0, whose
OTService red impacts). The Operational subnet refuses traffic from the User subnet. The built scenario is
equivalent to the published Scenario2 for the CybORG engine: same processes, users and OS on each host,
same host values, same `info` entries, same agents (`tests/test_cage2_spec.py` checks it).

Orders matter where the engine walks them: hosts are listed by name, the subnets as Scenario2 lists
them (IP allocation draws per subnet in that order), and each image's processes and users as in the
original images.
"""

from __future__ import annotations

from cagekit.scenarios.images import (
    LINUX,
    LINUX_USERS,
    WINDOWS,
    Conn,
    HostImage,
    Proc,
    User,
    apache,
    haraka_smtp,
    mysql,
    ot_service,
    sshd,
)
from cagekit.scenarios.spec import BlueAgentSpec, HostSpec, ScenarioSpec, SubnetSpec

# --- users ------------------------------------------------------------------------------------

#: the account green's sessions use; on Linux it shares GID/UID 1001 with pi, as in CAGE-2
_GREEN_LINUX = User("GreenAgent", 1001, ((1001, "GreenAgent"),))
CAGE2_LINUX_USERS = (*LINUX_USERS, _GREEN_LINUX)

_SID = "S-1-5-21-1983491181-1743339912-3520046837-"
CAGE2_WINDOWS_USERS = (
    User("Administrator", _SID + "500", ((0, "ADMINISTRATORS"),)),
    User("GreenAgent", _SID + "1019", None),
    User("vagrant", _SID + "1000", ((0, "ADMINISTRATORS"),), password="vagrant", bruteforceable=True),
    User("SYSTEM", None, None),
)

VELOCIRAPTOR_USERS = (
    User("root", 0, ((0, "root"),)),
    User("ubuntu", 1000, ((1000, "ubuntu"),)),
)

# --- Windows processes (connections without a transport protocol, as in the CAGE-2 images) -----------


def _win(port: int) -> Conn:
    return Conn(port, protocol=None)


def _win_sshd() -> Proc:
    return Proc("sshd.exe", 3368, "sshd_server", "C:\\Program Files\\OpenSSH\\usr\\sbin", ppid=5956,
                conns=(_win(22),))


def _smss(ptype: str | None) -> Proc:
    """SMB (445, 139) in one entry; Enterprise1/2's image gives it no type (why EternalBlue fails there)."""
    return Proc("smss.exe", 4, "SYSTEM", None, ppid=372, ptype=ptype, conns=(_win(445), _win(139)))


def _svchost_rpc() -> Proc:
    return Proc("svchost.exe", 832, "SYSTEM", None, ppid=4, conns=(_win(135),))


def _svchost_rdp(user: str) -> Proc:
    return Proc("svchost.exe", 4400, user, None, ppid=4, ptype="rdp", conns=(_win(3389),))


# --- images -----------------------------------------------------------------------------------

GATEWAY = HostImage("cage2_gateway", LINUX, (sshd(ptype=None),), CAGE2_LINUX_USERS)

OP_SERVER = HostImage("cage2_op_server", LINUX, (sshd(ptype=None), ot_service()), CAGE2_LINUX_USERS,
                      services={"OTService": 1043})

INTERNAL = HostImage(
    "cage2_internal", WINDOWS,
    (
        _win_sshd(),
        _svchost_rpc(),
        _svchost_rdp("SYSTEM"),
        _smss(None),
        Proc("tomcat8.exe", 3404, "NetworkService", None, ppid=4, ptype="webserver", properties=("rfi",),
             conns=(_win(80), _win(443))),
    ),
    CAGE2_WINDOWS_USERS,
    monitor_user="SYSTEM",
)

# CAGE-2 runs the monitoring client as "ubuntu" even on its Windows workstations.
WINDOWS_USER_HOST1 = HostImage(
    "cage2_windows_user1", WINDOWS,
    (
        _win_sshd(),
        Proc("femitter.exe", 3344, "SYSTEM", "C:\\Program Files\\Femitter", ppid=5566, ptype="femitter",
             conns=(_win(21),)),
    ),
    CAGE2_WINDOWS_USERS,
    monitor_user="ubuntu",
)

WINDOWS_USER_HOST2 = HostImage(
    "cage2_windows_user2", WINDOWS,
    (_smss("smb"), _svchost_rpc(), _svchost_rdp("NetworkService")),
    CAGE2_WINDOWS_USERS,
    monitor_user="ubuntu",
)

# The web server's two ports are separate entries around mysql, as in the original images.
LINUX_USER_HOST1 = HostImage(
    "cage2_linux_user1", LINUX,
    (apache(ports=(80,)), mysql(3389), apache(ports=(443,)), haraka_smtp()),
    CAGE2_LINUX_USERS,
)

LINUX_USER_HOST2 = HostImage(
    "cage2_linux_user2", LINUX,
    (sshd(ptype=None), apache(ports=(80,)), mysql(3390), apache(ports=(443,)), haraka_smtp()),
    CAGE2_LINUX_USERS,
)

VELOCIRAPTOR_SERVER = HostImage(
    "cage2_velociraptor_server", LINUX,
    (
        Proc("init", 1, "root", "/sbin", ppid=0),
        Proc("systemd-journald", 389, "root", "/lib/systemd"),
        Proc("systemd-udevd", 407, "root", "/lib/systemd"),
        Proc("lvmetad", 409, "root", "/sbin"),
        Proc("systemd-timesyncd", 560, "systemd+", "/lib/systemd"),
        Proc("accounts-daemon", 790, "root", "/usr/lib/accountsservice"),
        Proc("atd", 802, "daemon", "/usr/sbin"),
        Proc("bash", 803, "velocir+", "/bin"),
        Proc("rsyslogd", 807, "syslog", "/usr/sbin"),
        Proc("acpid", 824, "root", "/usr/sbin"),
        Proc("snapd", 825, "root", "/usr/lib/snapd"),
        Proc("dbus-daemon", 827, "message+", "/usr/bin"),
        Proc("velociraptor.bin", 832, "velocir+", "/usr/local/bin", ppid=803),
        Proc("cron", 844, "root", "/usr/sbin"),
        Proc("systemd-logind", 847, "root", "/lib/systemd"),
        Proc("python3", 852, "root", "/usr/bin"),
        Proc("lxcfs", 853, "root", "/usr/bin"),
        Proc("polkitd", 863, "root", "/usr/lib/policykit-1"),
        Proc("python3", 867, "root", "/usr/bin"),
        Proc("agetty", 875, "root", "/sbin"),
        Proc("agetty", 884, "root", "/sbin"),
        Proc("python3", 1370, "root", "/usr/bin"),
        Proc("systemd-hostnamed", 1432, "root", "/lib/systemd"),
        Proc("sshd", 2288, "root", None, ppid=879),
        sshd(879, ptype=None),
        Proc("systemd-resolved", 656, "systemd+", "/lib/systemd",
             conns=(Conn(53, "127.0.0.53", "TCP"), Conn(53, "127.0.0.53", "UDP"))),
        Proc("systemd-networkd", 634, "systemd+", "/lib/systemd", conns=(Conn(68, "10.0.11.88", "UDP"),)),
    ),
    VELOCIRAPTOR_USERS,
)

# --- the scenario -----------------------------------------------------------------------------

_ALL_HOSTS = ("Defender", "Enterprise0", "Enterprise1", "Enterprise2", "Op_Host0", "Op_Host1", "Op_Host2",
              "Op_Server0", "User0", "User1", "User2", "User3", "User4")

CAGE2 = ScenarioSpec(
    name="cage2",
    description="The CAGE-2 challenge network (CybORG Scenario2): 13 hosts in User, Enterprise and Operational.",
    hosts=(
        # The Defender answers pings in CAGE-2 (the engine has no way to say otherwise).
        HostSpec("Defender", VELOCIRAPTOR_SERVER),
        HostSpec("Enterprise0", GATEWAY, confidentiality="Medium", availability="Medium"),
        HostSpec("Enterprise1", INTERNAL, confidentiality="Medium", availability="Medium"),
        HostSpec("Enterprise2", INTERNAL, confidentiality="Medium", availability="Medium",
                 reveals=("Op_Server0",)),
        HostSpec("Op_Host0", GATEWAY),
        HostSpec("Op_Host1", GATEWAY),
        HostSpec("Op_Host2", GATEWAY),
        HostSpec("Op_Server0", OP_SERVER, confidentiality="Medium", availability="High",
                 info_services=("OTService",)),
        HostSpec("User0", WINDOWS_USER_HOST1, confidentiality="None", availability="None"),
        HostSpec("User1", WINDOWS_USER_HOST1, availability="None", reveals=("Enterprise1",)),
        HostSpec("User2", WINDOWS_USER_HOST2, availability="None", reveals=("Enterprise1",)),
        HostSpec("User3", LINUX_USER_HOST1, availability="None", reveals=("Enterprise0",)),
        HostSpec("User4", LINUX_USER_HOST2, availability="None", reveals=("Enterprise0",)),
    ),
    # Scenario2's order: the engine draws each subnet's addresses in this order.
    subnets=(
        # Scenario2 gives Enterprise a Size of 3 for its 4 hosts; either size gets a /28.
        SubnetSpec("Enterprise", ("Enterprise0", "Enterprise1", "Enterprise2", "Defender"), size=3),
        SubnetSpec("Operational", ("Op_Server0", "Op_Host0", "Op_Host1", "Op_Host2"),
                   nacls={"User": {"in": "None", "out": "all"}, "all": {"in": "all", "out": "all"}}, size=4),
        SubnetSpec("User", ("User0", "User1", "User2", "User3", "User4"), size=5),
    ),
    blue_layouts={
        "classic": (BlueAgentSpec("Blue", _ALL_HOSTS, action_set="cage2"),),
        "team": (
            BlueAgentSpec("blue_user", ("User0", "User1", "User2", "User3", "User4"), action_set="cage2"),
            BlueAgentSpec("blue_enterprise", ("Defender", "Enterprise0", "Enterprise1", "Enterprise2"),
                          action_set="cage2"),
            BlueAgentSpec("blue_ops", ("Op_Host0", "Op_Host1", "Op_Host2", "Op_Server0"), action_set="cage2"),
        ),
    },
    red_agents={"B_lineAgent": "B_lineAgent", "RedMeanderAgent": "RedMeanderAgent", "SleepAgent": "SleepAgent"},
    green_agents={"sleep": "SleepAgent"},
    default_red="B_lineAgent",
    default_green="sleep",
    reward="cage2",
    default_layout="classic",
    green_hosts=("User0", "User1", "User2", "User3", "User4", "Op_Host0", "Op_Host1", "Op_Host2"),
    green_rate=0.0,
)
