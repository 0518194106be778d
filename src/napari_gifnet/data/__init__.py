"""Sample data, synthetic (offline) and published (downloaded, sha256 pinned); no torch."""
