"""tokenpick beside other libraries: :mod:`tokenpick.integrations.transformers` makes
HF transformers' ``generate`` sample with tokenpick and runs a decoding loop with a
:class:`tokenpick.Sampler`.  Each module imports its library only when used, so that
tokenpick itself needs numpy alone."""
