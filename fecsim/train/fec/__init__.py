"""FEC, Google's Facial Expression Comparison dataset: read its CSVs, download and crop its faces,
turn its triplets into training data, and score a model the way FECNet was scored.

    python -m fecsim.train.fec download faceexp-comparison-data-train-public.csv --out data/fec/images
    python -m fecsim.train.fec evaluate faceexp-comparison-data-test-public.csv --images data/fec/images \
        --checkpoint runs/fec/fecsim.safetensors
"""
from .reader import TRIPLET_TYPES, FaceRef, Triplet, majority, read_triplets

__all__ = ["TRIPLET_TYPES", "FaceRef", "Triplet", "majority", "read_triplets"]
