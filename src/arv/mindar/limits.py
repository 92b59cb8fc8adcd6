"""The largest picture the compiler decodes, in a module of its own so the settings can name it cheaply.

Importing this module loads neither numpy nor OpenCV (``arv.mindar`` loads its other modules on first
use), so ARV's settings take their default from it and the compiler's limit and ARV_MAX_IMAGE_PIXELS
are one number.
"""

# Refuse images whose header claims more pixels than this: 60 MP holds a 48 MP phone photo and a
# 7746 x 7746 poster, and any accepted image compiles within 600 MB (README, "Memory of a compile").
# Checked before any pixel is decoded (decompression bombs claim billions).
DEFAULT_MAX_PIXELS = 60_000_000
