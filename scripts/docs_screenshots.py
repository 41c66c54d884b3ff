"""Build the documentation site and check every page in a real headless browser.

    python scripts/docs_screenshots.py [--out site-shots/]

Runs ``mkdocs build --strict`` into a temporary folder, serves it on 127.0.0.1 (a free
port), opens each page of the navigation in Debian's chromium driven by Playwright
(``pip install -e ".[docs,screenshots]"`` and ``apt-get install chromium``; no browser is
downloaded), and checks that it rendered: its heading is there, the navigation is drawn,
every image loaded, no request failed and the page logged no error. A screenshot of each
page goes to --out. Exits 1 naming what failed.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def build(site: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(site)],
        cwd=ROOT,
        check=True,
    )


def pages(site: Path) -> list[str]:
    """Every built page, as a path below the site's root."""
    return sorted(
        str(p.relative_to(site).parent).replace(".", "") + "/"
        for p in site.rglob("index.html")
        if "assets" not in p.parts and p.parent.name != "404"
    )


def serve(site: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def check(url: str, paths: list[str], out: Path, chromium: str) -> list[str]:
    """Open each page; returns the problems found (empty: all rendered)."""
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        where = {"path": ""}
        page.on("pageerror", lambda e: problems.append(f"{where['path']}: script error {e}"))
        page.on("requestfailed", lambda r: problems.append(f"{where['path']}: failed {r.url}"))
        page.on(
            "response",
            lambda r: r.status >= 400 and problems.append(f"{where['path']}: {r.status} {r.url}"),
        )
        for path in paths:
            where["path"] = path
            page.goto(f"{url}/{path}", wait_until="networkidle")
            if not page.locator("article h1").count():
                problems.append(f"{path}: no heading")
            if not page.locator("nav.md-nav").count():
                problems.append(f"{path}: no navigation")
            broken = page.evaluate(
                "Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0)"
                ".map(i => i.getAttribute('src'))"
            )
            problems += [f"{path}: image {src} did not load" for src in broken]
            name = path.strip("/").replace("/", "_") or "index"
            page.screenshot(path=str(out / f"{name}.png"))
        browser.close()
    return problems


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("site-shots"))
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args(argv)
    try:
        import playwright  # noqa: F401
    except ImportError:
        sys.exit('docs_screenshots: error: no playwright; pip install -e ".[screenshots]"')
    if not Path(args.chromium).is_file():
        sys.exit(
            f"docs_screenshots: error: no chromium at {args.chromium}: apt-get install chromium"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        build(site)
        server, url = serve(site)
        try:
            paths = pages(site)
            problems = check(url, paths, args.out, args.chromium)
        finally:
            server.shutdown()
    for problem in problems:
        print(f"docs_screenshots: {problem}", file=sys.stderr)
    print(f"{len(paths)} pages checked, {len(problems)} problems; screenshots in {args.out}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
