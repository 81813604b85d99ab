def test_imports():
    import cv2
    import paddleocr  # noqa: F401
    import ray  # noqa: F401

    assert int(cv2.__version__.split(".")[1]) >= 13
