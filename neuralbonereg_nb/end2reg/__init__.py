"""End2Reg: segmentation learned through registration, for markerless RGB-D spine surgery (Pettinari et al., arXiv 2512.13402)."""
