"""Drives zkd's web console (/ui) in headless Chromium, as bins/zkd/tests/console.rs asks.

Environment: CONSOLE_URL (the AdminServer), ZK_ADDR (the client port, for kazoo),
SCREENSHOTS (a directory). Prints one JSON line of measurements; any failed check raises.
"""

import json
import os
import time

from kazoo.client import KazooClient
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

URL = os.environ["CONSOLE_URL"]
SHOTS = os.environ["SCREENSHOTS"]

opts = webdriver.ChromeOptions()
opts.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
for a in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"]:
    opts.add_argument(a)
driver = webdriver.Chrome(
    service=Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")), options=opts
)
wait = WebDriverWait(driver, 20)
zk = KazooClient(hosts=os.environ["ZK_ADDR"])
zk.start(timeout=15)
out = {}


def shot(name):
    driver.save_screenshot(os.path.join(SHOTS, name + ".png"))


def node(path):
    return driver.find_element(By.CSS_SELECTOR, 'li.node[data-path="%s"]' % path)


def text(id_):
    return driver.find_element(By.ID, id_).text


def rows_under(prefix):
    return len(driver.find_elements(By.CSS_SELECTOR, 'li.node[data-path^="%s/"]' % prefix))


def select(path):
    node(path).find_element(By.CSS_SELECTOR, "a.name").click()
    wait.until(lambda d: text("detail-path") == path)


def save(data):
    box = driver.find_element(By.ID, "edit-data")
    box.clear()
    box.send_keys(data)
    driver.find_element(By.ID, "save-button").click()


try:
    driver.get(URL + "/ui")
    wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")
    assert text("whoami") == "read-only", text("whoami")

    # A tree of 10,000 children is listed a page at a time.
    node("/").find_element(By.CSS_SELECTOR, ".toggle").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, 'li.node[data-path="/big"]'))
    node("/big").find_element(By.CSS_SELECTOR, ".toggle").click()
    wait.until(lambda d: rows_under("/big") > 0)
    first_page = rows_under("/big")
    more = node("/big").find_element(By.CSS_SELECTOR, ":scope > button.more")
    assert first_page == 100, first_page
    assert "100 of 10000" in more.text, more.text
    more.click()
    wait.until(lambda d: rows_under("/big") == 200)
    out["rows_loaded_of_10000"] = rows_under("/big")
    shot("1-tree")

    # A node's data, Stat and ACL; JSON pretty-printed and hex views.
    select("/big/n00042")
    wait.until(lambda d: text("data-text") == "value-42")
    assert "dataLength" in text("stat") and "world:anyone" in text("acl")
    select("/json")
    driver.find_element(By.ID, "view-json").click()
    wait.until(lambda d: '"b": [' in text("data-text"))
    driver.find_element(By.ID, "view-hex").click()
    wait.until(lambda d: text("data-text").startswith("00000000  7b 22 61 22"))
    driver.find_element(By.ID, "view-text").click()

    # Unauthenticated: read-only, the edit is refused and nothing changes.
    select("/big/n00042")
    wait.until(lambda d: text("data-text") == "value-42")
    save("edited")
    wait.until(lambda d: "ReadOnly" in text("message"))
    assert zk.get("/big/n00042")[0] == b"value-42"
    out["unauthenticated_edit"] = text("message")
    shot("2-refused-unauthenticated")
    # ACLs apply: the digest-protected node is not readable anonymously.
    node("/").find_element(By.CSS_SELECTOR, ".toggle").click()
    node("/").find_element(By.CSS_SELECTOR, ".toggle").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, 'li.node[data-path="/secret"]'))
    select("/secret")
    wait.until(lambda d: "NoAuth" in text("message"))

    # Signed in: edit with the version check.
    driver.find_element(By.ID, "login-user").send_keys("alice")
    driver.find_element(By.ID, "login-password").send_keys("pw")
    driver.find_element(By.ID, "login-button").click()
    wait.until(lambda d: text("whoami") == "signed in as alice")
    select("/secret")
    wait.until(lambda d: text("data-text") == "top secret")
    node("/").find_element(By.CSS_SELECTOR, ".toggle").click()
    node("/").find_element(By.CSS_SELECTOR, ".toggle").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, 'li.node[data-path="/big"]'))
    node("/big").find_element(By.CSS_SELECTOR, ".toggle").click()
    wait.until(lambda d: rows_under("/big") == 100)
    select("/big/n00042")
    wait.until(lambda d: text("data-text") == "value-42")
    save("edited in the browser")
    wait.until(lambda d: text("data-text") == "edited in the browser")
    assert "saved" in text("message"), text("message")
    data, stat = zk.get("/big/n00042")
    assert data == b"edited in the browser" and stat.version == 1, (data, stat)
    # A stale version is refused.
    zk.set("/big/n00042", b"changed elsewhere")
    save("stale edit")
    wait.until(lambda d: "BadVersion" in text("message"))
    assert zk.get("/big/n00042")[0] == b"changed elsewhere"
    shot("3-edited")

    # Live: a change made by another client shows within a second.
    select("/big")
    driver.find_element(By.ID, "watch-button").click()
    wait.until(lambda d: text("watch-state") == "watching /big")
    started = time.monotonic()
    zk.set("/big/n00007", b"changed by kazoo")
    WebDriverWait(driver, 1.0, poll_frequency=0.02).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, 'li.event[data-path="/big/n00007"]')
    )
    out["watched_change_ms"] = round((time.monotonic() - started) * 1000, 1)
    ev = driver.find_element(By.CSS_SELECTOR, 'li.event[data-path="/big/n00007"]')
    assert ev.get_attribute("data-type") == "NodeDataChanged"
    shot("4-live-watch")

    # Overview: the big families report names /big.
    driver.find_element(By.ID, "overview-refresh").click()
    wait.until(lambda d: "/big" in text("ov-families"))
    driver.execute_script("document.getElementById('overview').scrollIntoView()")
    shot("5-overview")
    print(json.dumps(out))
finally:
    zk.stop()
    driver.quit()
