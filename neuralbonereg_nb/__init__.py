import os as _os
_os.environ.setdefault("OPEN3D_DISABLE_WEB_VISUALIZER", "true")  # no Open3D WebRTC noise in notebooks
__version__ = "0.0.1"
