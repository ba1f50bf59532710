"""The seed paper's networks, written as our own data: `paper-small` (2 subnets) and `paper-large` (3)."""

from __future__ import annotations

from cagekit.scenarios.images import (
    LINUX,
    LINUX_USERS,
    WINDOWS,
    WINDOWS_USERS,
    HostImage,
    Proc,
    apache,
    femitter_ftp,
    ot_service,
    sshd,
)
from cagekit.scenarios.spec import BlueAgentSpec, HostSpec, ScenarioSpec, SubnetSpec

FOOTHOLD = HostImage("foothold", WINDOWS, (Proc("explorer.exe", 1000, "SYSTEM", "C:\\Windows"),), WINDOWS_USERS)
WINDOWS_SSH_FTP = HostImage("windows_ssh_ftp", WINDOWS,
                            (sshd(1090, "SYSTEM"), femitter_ftp(1200)), WINDOWS_USERS)
LINUX_WEB = HostImage("linux_web", LINUX, (sshd(), apache()), LINUX_USERS)
GATEWAY = HostImage("gateway", LINUX, (sshd(),), LINUX_USERS)
OT_SERVER = HostImage("ot_server", LINUX, (sshd(), ot_service()), LINUX_USERS, services={"OTService": 1043})
MONITOR = HostImage("monitor", LINUX, (sshd(), Proc("velociraptor", 1300, "root", "/usr/local/bin", ports=(8000,))),
                    LINUX_USERS)

PAPER_RED = {"KillChainAgent": "KillChainAgent", "ExplorerAgent": "ExplorerAgent", "SleepAgent": "SleepAgent"}
PAPER_GREEN = {"alerts": "FalseAlarmGreen", "none": "SleepAgent"}

PAPER_SMALL = ScenarioSpec(
    name="paper-small",
    description="The seed paper's small network: User and Operational subnets, two blue agents.",
    hosts=(
        HostSpec("User0", FOOTHOLD, confidentiality="None", availability="None"),
        HostSpec("User1", WINDOWS_SSH_FTP, confidentiality="Low", availability="None"),
        HostSpec("User2", LINUX_WEB, confidentiality="Low", availability="None", reveals=("Op_Host0",)),
        HostSpec("Op_Host0", GATEWAY, confidentiality="Medium", availability="None", reveals=("Op_Server0",)),
        HostSpec("Op_Server0", OT_SERVER, confidentiality="High", availability="None",
                 info_services=("OTService",)),
        HostSpec("Defender", MONITOR, confidentiality="None", availability="None", ping=False),
    ),
    subnets=(
        SubnetSpec("User", ("User0", "User1", "User2")),
        SubnetSpec("Operational", ("Op_Host0", "Op_Server0", "Defender")),
    ),
    blue_layouts={"team": (
        BlueAgentSpec("blue_user", ("User1", "User2"), block_subnets=("Operational",)),
        BlueAgentSpec("blue_ops", ("Op_Host0", "Op_Server0"), block_subnets=("User",)),
    )},
    red_agents=PAPER_RED,
    green_agents=PAPER_GREEN,
    default_red="KillChainAgent",
    default_green="alerts",
    reward="paper",
)

PAPER_LARGE = ScenarioSpec(
    name="paper-large",
    description="The seed paper's larger network: 7 defended hosts in User, Enterprise and Operational, "
                "three blue agents.",
    hosts=(
        HostSpec("User0", FOOTHOLD, confidentiality="None", availability="None"),
        HostSpec("User1", WINDOWS_SSH_FTP, confidentiality="Low", availability="None"),
        HostSpec("User2", LINUX_WEB, confidentiality="Low", availability="None", reveals=("Enterprise0",)),
        HostSpec("User3", LINUX_WEB, confidentiality="Low", availability="None", reveals=("Enterprise1",)),
        HostSpec("Enterprise0", GATEWAY, confidentiality="Medium", availability="None", reveals=("Op_Host0",)),
        HostSpec("Enterprise1", LINUX_WEB, confidentiality="Medium", availability="None"),
        HostSpec("Op_Host0", GATEWAY, confidentiality="Medium", availability="None", reveals=("Op_Server0",)),
        HostSpec("Op_Server0", OT_SERVER, confidentiality="High", availability="None",
                 info_services=("OTService",)),
        HostSpec("Defender", MONITOR, confidentiality="None", availability="None", ping=False),
    ),
    subnets=(
        SubnetSpec("User", ("User0", "User1", "User2", "User3")),
        SubnetSpec("Enterprise", ("Enterprise0", "Enterprise1", "Defender")),
        SubnetSpec("Operational", ("Op_Host0", "Op_Server0")),
    ),
    blue_layouts={"team": (
        BlueAgentSpec("blue_user", ("User1", "User2", "User3"), block_subnets=("Enterprise",)),
        BlueAgentSpec("blue_enterprise", ("Enterprise0", "Enterprise1"), block_subnets=("User", "Operational")),
        BlueAgentSpec("blue_ops", ("Op_Host0", "Op_Server0"), block_subnets=("Enterprise",)),
    )},
    red_agents=PAPER_RED,
    green_agents=PAPER_GREEN,
    default_red="KillChainAgent",
    default_green="alerts",
    reward="paper",
)
