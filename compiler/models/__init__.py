"""Model kinds, each registered in `nlic.compiler.kinds.MODEL_KINDS` on import."""
