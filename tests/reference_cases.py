"""The nine published reference cases (``../shared/reference/official/<case>.npz``)."""

CASES = [
    "IVIF",
    "MEIF",
    "MFIF",
    "Medical",
    "NIR-VIS",
    "Remote-band1",
    "Remote-band2",
    "Remote-band3",
    "Remote-band4",
]
