"""docs/scenarios.md's example of a network of one's own, shared by the tests that use one: a web host, a
gateway and the OT server, two blue agents, paper-small's images and agents."""

from __future__ import annotations

import dataclasses

from cagekit.scenarios import BlueAgentSpec, HostSpec, SubnetSpec
from cagekit.scenarios.paper import FOOTHOLD, GATEWAY, LINUX_WEB, MONITOR, OT_SERVER, PAPER_SMALL

TINY = dataclasses.replace(
    PAPER_SMALL, name="tiny", description="a web host, a gateway, the OT server",
    hosts=(HostSpec("User0", FOOTHOLD, confidentiality="None", availability="None"),
           HostSpec("Web", LINUX_WEB, availability="None", reveals=("Gate",)),
           HostSpec("Gate", GATEWAY, confidentiality="Medium", availability="None", reveals=("Op_Server0",)),
           HostSpec("Op_Server0", OT_SERVER, confidentiality="High", availability="None",
                    info_services=("OTService",)),
           HostSpec("Defender", MONITOR, confidentiality="None", availability="None", ping=False)),
    subnets=(SubnetSpec("Front", ("User0", "Web")), SubnetSpec("Back", ("Gate", "Op_Server0", "Defender"))),
    blue_layouts={"team": (BlueAgentSpec("front", ("Web",), block_subnets=("Back",)),
                           BlueAgentSpec("back", ("Gate", "Op_Server0"), block_subnets=("Front",)))})
