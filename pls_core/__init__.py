"""pls_core: the ROS-free half of pls (Provably Lifetime Safe RL).

Data flows one way: dataset -> CDT model -> ONNX -> runtime -> episodes -> GP safe optimizer -> next target.
"""

__version__ = "0.1.0"
