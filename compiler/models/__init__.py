"""Model kinds, each registered in `nlic.compiler.kinds.MODEL_KINDS` on import of this package.

nli is the Neural Language Interpreter; in_context, ttt, lpn and dlpn are the baselines it is compared with.
"""

from nlic.compiler.models import dlpn, in_context, lpn, nli, ttt

__all__ = ["dlpn", "in_context", "lpn", "nli", "ttt"]
