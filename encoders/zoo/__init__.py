"""Encoder specs, one module per family. Every module-level `EncoderSpec` here is registered."""
