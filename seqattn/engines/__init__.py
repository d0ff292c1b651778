"""Decoding engines besides our own: CTranslate2 (:mod:`~seqattn.engines.ct2_convert` builds
the model from our weights; :mod:`~seqattn.engines.ct2` translates with it, without torch)."""
