"""lenet_tf: LeNet networks for the Kaggle Digit Recognizer competition (TensorFlow / Keras 3)."""

__version__ = "0.1.0"
