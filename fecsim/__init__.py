"""fecsim: do two face photos show the same facial expression?"""
from .errors import BoxError, CheckpointError, FecsimError, ImageError, NoFaceError
from .inference import ExpressionComparer, PairResult, TripletResult

__all__ = ["ExpressionComparer", "PairResult", "TripletResult", "FecsimError", "ImageError",
           "NoFaceError", "BoxError", "CheckpointError"]
