"""Model kinds, registered in `nlic.compiler.kinds.MODEL_KINDS` here.

nli is the Neural Language Interpreter; in_context, ttt, lpn and dlpn are the baselines it is compared with.
"""

from nlic.compiler.kinds import MODEL_KINDS
from nlic.compiler.models.dlpn import DLPN_KIND
from nlic.compiler.models.in_context import IN_CONTEXT
from nlic.compiler.models.lpn import LPN_KIND
from nlic.compiler.models.nli import NLI_KIND
from nlic.compiler.models.ttt import TTT

__all__ = ["DLPN_KIND", "IN_CONTEXT", "LPN_KIND", "NLI_KIND", "TTT"]

for _kind in (NLI_KIND, IN_CONTEXT, TTT, LPN_KIND, DLPN_KIND):
    MODEL_KINDS.register(_kind.name, _kind)
