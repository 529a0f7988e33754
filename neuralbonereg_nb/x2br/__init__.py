"""X2BR: a 3-D bone from one planar X-ray (DRRs, the X2B occupancy network, template and geodesic CPD)."""
