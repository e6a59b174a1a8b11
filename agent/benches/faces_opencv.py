#!/usr/bin/env python3
"""Reference run for the faces benchmark: OpenCV's FaceDetectorYN (OpenCV >= 4.8) with
the same YuNet model on the same frames. Prints one JSON object:
{"opencv": "4.x", "frames": [{"file": ..., "boxes": [[x, y, w, h, score], ...],
 "ms": [...]}]}.

usage: faces_opencv.py MODEL FRAME_DIR ROUNDS THREADS
"""
import json
import os
import sys
import time

import cv2


def main():
    model, frame_dir, rounds, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    major, minor = (int(x) for x in cv2.__version__.split(".")[:2])
    if (major, minor) < (4, 8):
        sys.exit(f"OpenCV {cv2.__version__} is too old: FaceDetectorYN decodes YuNet 2023mar from 4.8 on")
    cv2.setNumThreads(threads)
    files = sorted(f for f in os.listdir(frame_dir) if f.endswith(".jpg"))
    det = cv2.FaceDetectorYN.create(model, "", (320, 320), 0.6, 0.3, 5000)
    out = []
    for f in files:
        img = cv2.imread(os.path.join(frame_dir, f))
        h, w = img.shape[:2]
        det.setInputSize((w, h))
        det.detect(img)  # warm-up
        times = []
        faces = None
        for _ in range(rounds):
            t = time.perf_counter()
            _, faces = det.detect(img)
            times.append((time.perf_counter() - t) * 1000.0)
        boxes = [] if faces is None else [[float(v) for v in row[:4]] + [float(row[14])] for row in faces]
        out.append({"file": f, "boxes": boxes, "ms": times})
    json.dump({"opencv": cv2.__version__, "frames": out}, sys.stdout)


if __name__ == "__main__":
    main()
