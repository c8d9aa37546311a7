"""Fixtures of the browser tests: Debian's Chromium driven by Playwright, a fake camera fed from the
sample video, and the whole system running as processes."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import DATA_DIR
from .system import EmotuneSystem, catalogue_spotify

CHROMIUM = Path("/usr/bin/chromium")
VIDEO = DATA_DIR / "video" / "short_hamilton_clip.mp4"
ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.browser_failed = report.failed
    return report


def write_y4m(video: Path, out: Path, seconds: float = 6.0, fps: int = 10) -> Path:
    """The first ``seconds`` of ``video`` as an uncompressed YUV4MPEG2 file (what Chromium's fake
    camera plays, in a loop), at ``fps`` frames a second."""
    import cv2

    capture = cv2.VideoCapture(str(video))
    source_fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    step = max(1, round(source_fps / fps))
    frames, index = [], 0
    while len(frames) < seconds * fps:
        ok, frame = capture.read()
        if not ok:
            break
        if index % step == 0:
            height, width = frame.shape[:2]
            frames.append(cv2.cvtColor(frame[: height - height % 2, : width - width % 2], cv2.COLOR_BGR2YUV_I420))
        index += 1
    capture.release()
    assert frames, f"no frames could be read from {video}"
    height, width = frames[0].shape[0] * 2 // 3, frames[0].shape[1]
    with open(out, "wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for yuv in frames:
            f.write(b"FRAME\n")
            f.write(yuv.tobytes())
    return out


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture(scope="module")
def fake_camera(tmp_path_factory) -> Path:
    if not VIDEO.exists():
        pytest.fail(f"the sample video is missing: {VIDEO} (see {VIDEO.parent}/README.md)")
    return write_y4m(VIDEO, tmp_path_factory.mktemp("camera") / "camera.y4m")


@pytest.fixture(scope="module")
def system(tmp_path_factory, model_server, recommender_models) -> Iterator[EmotuneSystem]:
    """Every service as a process over private Redis servers, the gateway on a free port; the
    recommender loads the session's model (training one takes minutes on a busy machine)."""
    with catalogue_spotify() as spotify:
        running = EmotuneSystem(tmp_path_factory.mktemp("system"), model_server=model_server.target, spotify=spotify,
                                recommender_models=recommender_models)  # fmt: skip
        try:
            yield running.start()
        finally:
            running.stop()


@pytest.fixture(scope="module")
def browser(chromium: Path, fake_camera: Path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium),
            args=[
                "--no-sandbox",  # CI runs as root
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
                f"--use-file-for-fake-video-capture={fake_camera}",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, system: EmotuneSystem, request):
    """A fresh page with the camera allowed; on failure the services' logs are printed."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, permissions=["camera"])
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    yield page
    if getattr(request.node, "browser_failed", False):
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-failure.png"), full_page=True)
        print(system.logs())
    context.close()


@pytest.fixture(scope="session", autouse=True)
def _artifacts() -> None:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(exist_ok=True)
