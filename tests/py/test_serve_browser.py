#!/usr/bin/env python3
"""The web app of `fxscreen serve` in a real browser: headless Chromium
(Debian's chromium + chromium-driver) driven by Selenium.  At a phone width
(360 px) and a desktop width it uploads a synthetic 16-bit radiograph through
the file picker, waits for the result, and checks that the prediction,
confidence and overlay are shown and agree with the API, that the opacity
slider changes the overlay, that the page has no console errors and no
horizontal scrolling, that controls are labelled and reachable by keyboard;
screenshots go to BUILD/screenshots/."""
import base64
import re
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve_util as su  # noqa: E402
from serve_util import check  # noqa: E402

try:
    from selenium import webdriver  # noqa: F401  (its absence is the skip below)
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:
    print("SKIP browser test: python3-selenium is not installed (make deps installs it)")
    sys.exit(0)

CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")


def browser(width, height, mobile):
    return su.chromium(width, height, mobile, args=("--hide-scrollbars",))


def session(srv, image, label, width, height, mobile, shots, api_result):
    d = browser(width, height, mobile)
    try:
        d.get("http://127.0.0.1:%d/" % srv.port)
        check("%s: page title" % label, "fxscreen" in d.title, d.title)
        vw = d.execute_script("return document.documentElement.clientWidth")
        sw = d.execute_script("return document.documentElement.scrollWidth")
        check("%s: no horizontal scrolling before upload (%d <= %d)" % (label, sw, vw), sw <= vw, (sw, vw))
        # Labelled controls: every input has a label or aria-label.
        unlabelled = d.execute_script("""
            return [...document.querySelectorAll('input, button, a.btn')].filter(e => {
              if (e.getAttribute('aria-label')) return false;
              if (e.id && document.querySelector('label[for="' + e.id + '"]')) return false;
              return !(e.textContent || '').trim();
            }).map(e => e.id || e.tagName);""")
        check("%s: every control is labelled" % label, not unlabelled, unlabelled)
        # Keyboard: the drop zone and buttons are reachable with Tab.
        seen = []
        for _ in range(6):
            ActionChains(d).send_keys(Keys.TAB).perform()
            seen.append(d.switch_to.active_element.get_attribute("id") or d.switch_to.active_element.tag_name)
        check("%s: the drop zone is reachable by keyboard" % label, "drop" in seen, seen)
        d.save_screenshot(os.path.join(shots, "%s-start.png" % label))

        d.find_element(By.ID, "file").send_keys(image)
        WebDriverWait(d, 60).until(EC.visibility_of_element_located((By.ID, "result")))
        WebDriverWait(d, 30).until(lambda dr: dr.execute_script(
            "const o = document.getElementById('overlay'), u = document.getElementById('original');"
            "return o.complete && o.naturalWidth > 0 && u.complete && u.naturalWidth > 0;"))
        pred = d.find_element(By.ID, "prediction").text
        conf = d.find_element(By.ID, "confidence").text
        positive = api_result["probability"] >= api_result["threshold"]
        check("%s: prediction shown in words" % label,
              api_result["prediction"] in pred and (("Fracture suspected" in pred) == positive), pred)
        pct = "%.1f%%" % (100 * api_result["confidence"])
        check("%s: confidence shown as a number (%s)" % (label, pct), pct in conf, conf)
        check("%s: the not-for-clinical-use notice is shown" % label,
              "not for clinical use" in d.find_element(By.ID, "notice").text.lower())
        nat = d.execute_script("const o = document.getElementById('overlay');"
                               "return [o.naturalWidth, o.naturalHeight, o.getBoundingClientRect().width];")
        check("%s: overlay shown at the image's size, drawn on screen" % label,
              nat[0] == api_result["image"]["width"] and nat[1] == api_result["image"]["height"] and nat[2] > 100, nat)
        check("%s: the peak is marked" % label, d.find_element(By.ID, "peak").is_displayed())
        sw = d.execute_script("return document.documentElement.scrollWidth")
        vw = d.execute_script("return document.documentElement.clientWidth")
        check("%s: no horizontal scrolling with the result (%d <= %d)" % (label, sw, vw), sw <= vw, (sw, vw))
        d.save_screenshot(os.path.join(shots, "%s-result.png" % label))
        d.execute_script("document.getElementById('stack').scrollIntoView()")
        d.save_screenshot(os.path.join(shots, "%s-overlay.png" % label))
        before = d.get_screenshot_as_png()
        op0 = d.execute_script("return getComputedStyle(document.getElementById('overlay')).opacity")
        slider = d.find_element(By.ID, "opacity")
        slider.click()
        for _ in range(60):
            slider.send_keys(Keys.ARROW_LEFT)
        op1 = d.execute_script("return getComputedStyle(document.getElementById('overlay')).opacity")
        after = d.get_screenshot_as_png()
        check("%s: the slider changes the overlay's opacity (%s -> %s)" % (label, op0, op1),
              float(op1) < float(op0) and before != after, (op0, op1))
        check("%s: the slider's value is announced" % label,
              d.find_element(By.ID, "opacity-out").text.endswith("%"))
        d.save_screenshot(os.path.join(shots, "%s-slider.png" % label))
        links = d.execute_script("return [document.getElementById('dl-overlay').getAttribute('href'),"
                                 " document.getElementById('dl-overlay').getAttribute('download')]")
        sig = d.execute_async_script(
            "const done = arguments[0]; fetch(document.getElementById('dl-overlay').href)"
            ".then(r => r.arrayBuffer()).then(b => done(Array.from(new Uint8Array(b).slice(0, 8))))"
            ".catch(e => done(String(e)));")
        check("%s: the overlay download is the result's PNG" % label,
              links[0].startswith("blob:") and links[1].endswith("-overlay.png")
              and sig == [137, 80, 78, 71, 13, 10, 26, 10], (links, sig))
        # Print view: one page with the images, the result, the model and the time.
        d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
        hidden = d.execute_script("return ['upload', 'opacity'].map(i => getComputedStyle("
                                  "document.getElementById(i).closest('section, .controls')).display)")
        check("%s: print view hides the upload and the controls" % label, hidden == ["none", "none"], hidden)
        d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
        pdf = base64.b64decode(d.execute_cdp_cmd("Page.printToPDF", {"printBackground": True})["data"])
        pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
        check("%s: the print view is one page (A4/Letter)" % label, pages == 1, pages)
        with open(os.path.join(shots, "%s-print.pdf" % label), "wb") as f:
            f.write(pdf)
        # Drag and drop: the same file dropped on the drop zone gives a new result.
        first_id = d.execute_script("return document.getElementById('meta').textContent")
        d.execute_script("""
            const bytes = Uint8Array.from(atob(arguments[0]), c => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], 'dropped.png', {type: 'image/png'}));
            document.getElementById('drop').dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true}));
        """, base64.b64encode(open(image, "rb").read()).decode())
        WebDriverWait(d, 60).until(lambda dr: dr.execute_script(
            "return document.getElementById('meta').textContent") != first_id)
        check("%s: a dropped file is screened" % label,
              api_result["prediction"] in d.find_element(By.ID, "prediction").text)
        logs = [e for e in d.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        check("%s: no console errors" % label, not logs, logs[:3])
    finally:
        d.quit()


def main():
    if not CHROMIUM or not DRIVER:
        print("SKIP browser test: chromium and chromium-driver are not installed (make deps installs them)")
        return 0
    work = tempfile.mkdtemp(prefix="fx_browser_")
    shots = os.path.abspath(os.path.join(su.BUILD, "screenshots"))
    os.makedirs(shots, exist_ok=True)
    srv = su.Server("--threads", "4")
    try:
        image = su.synth(work, 2, size=1024, bits=16, seed=11)[1]
        st, _, api = srv.json("POST", "/api/predict", open(image, "rb").read(), {"Content-Type": "image/png"})
        check("API answer for the browser's image", st == 200, st)
        session(srv, image, "phone-360", 360, 740, True, shots, api)
        session(srv, image, "desktop-1280", 1280, 900, False, shots, api)
        print("  screenshots in %s" % shots)
    finally:
        srv.stop()
        shutil.rmtree(work, ignore_errors=True)
    print("%d failure(s)" % su.failures)
    return 1 if su.failures else 0


if __name__ == "__main__":
    sys.exit(main())
