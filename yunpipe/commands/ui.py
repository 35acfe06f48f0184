"""ui: the local web dashboard (yunpipe.ui)."""
import argparse

from yunpipe.ui.server import UiOptions, dashboard, open_browser


def run_ui(args: argparse.Namespace) -> int:
    board = dashboard(UiOptions(args.port, not args.no_browser, args.pipeline))
    print(f"The dashboard serves on 127.0.0.1 only; Ctrl-C stops it. Open:\n    {board.url}", flush=True)
    if not args.no_browser and not open_browser(board.url):
        print("(no browser found here: open the URL above in one on this machine)", flush=True)
    try:
        board.serve()  # until Ctrl-C (werkzeug's server takes the KeyboardInterrupt itself)
    except KeyboardInterrupt:
        pass
    finally:
        board.server.server_close()
    print("The dashboard stopped.")
    return 0
