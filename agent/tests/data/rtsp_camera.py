#!/usr/bin/python3
"""A network camera for the tests: an RTSP server (GStreamer's gst-rtsp-server) that plays
one JPEG frame in a loop at 10 fps as an RTP/JPEG stream.

    rtsp_camera.py FRAME.jpg PORT [MOUNT]

Prints "listening rtsp://127.0.0.1:PORT/MOUNT" once it serves. Needs Debian's python3-gi,
gir1.2-gst-rtsp-server-1.0 and gstreamer1.0-plugins-good (`./dev test` installs them).
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> int:
    if len(sys.argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 64
    frame, port = sys.argv[1], sys.argv[2]
    mount = sys.argv[3] if len(sys.argv) == 4 else "entrance"
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f'( multifilesrc location="{frame}" loop=true caps="image/jpeg,framerate=10/1" '
        "! jpegparse ! rtpjpegpay name=pay0 pt=26 )"
    )
    factory.set_shared(True)
    server.get_mount_points().add_factory(f"/{mount}", factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{port}", file=sys.stderr)
        return 1
    print(f"listening rtsp://127.0.0.1:{port}/{mount}", flush=True)
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
