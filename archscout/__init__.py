"""archscout: autonomous, statistically honest discovery of linear-attention token mixers."""

__version__ = "0.1.0"
