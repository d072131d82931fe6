"""The compare view in a real headless chromium: three experiments selected in the experiments
table, compared side by side (parameters, overlaid curves, parallel coordinates, best/last)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import FAST, wait_for
from test_compare import train
from test_gui_browser import ARTIFACTS, browser, cockpit, pytestmark  # noqa: F401  (fixture and skip mark)

pytestmark = [pytestmark, pytest.mark.slow]

CURVES_JS = """
const el = document.querySelectorAll('.nicegui-echart')[arguments[0]];
if (!el) return null;
const chart = getElement(el.id.slice(1)).chart;
const option = chart && chart.getOption();
return option ? option.series.map(s => s.data.length) : null;
"""


def test_compare_three_experiments_in_the_browser(project: Path, cockpit: str) -> None:
    from selenium.webdriver.common.by import By

    mlp = ["dataset=digits", "model=mlp", "max_epochs=2", *FAST]
    train(project, [*mlp, "lr=0.01"], [*mlp, "lr=0.02"], [*mlp, "lr=0.04"])
    ids = sorted(p.parent.name for p in (project / "output" / "experiments").glob("*/experiment.json"))
    driver = browser()
    try:
        driver.get(cockpit + "/experiments")
        wait_for(lambda: all(i in driver.page_source for i in ids), 60, "the three experiments in the table")
        boxes = driver.find_elements(By.CSS_SELECTOR, "tbody .q-checkbox")
        assert len(boxes) == 3
        for box in boxes:
            box.click()
        button = wait_for(lambda: driver.find_elements(By.XPATH, "//button[contains(., 'Compare selected (3)')]"),
                          30, "the compare button to count 3 selected")[0]
        button.click()
        wait_for(lambda: "/compare?ids=" in driver.current_url, 30, "the compare page")
        assert sorted(driver.current_url.split("ids=")[1].split(",")) == ids
        wait_for(lambda: "Parallel coordinates" in driver.page_source, 60, "the compare panel")
        # The differing parameter and one line per experiment in the overlaid curves.
        assert "0.04" in driver.page_source and "lr" in driver.page_source
        lengths = wait_for(lambda: driver.execute_script(CURVES_JS, 0), 30, "the curves chart")
        assert lengths == [2, 2, 2]  # val_acc of 2 epochs for each of the 3 experiments
        parallel = wait_for(lambda: driver.execute_script(CURVES_JS, 1), 30, "the parallel chart")
        assert parallel == [3]
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "cockpit_compare.png"))
    finally:
        driver.quit()
    assert json.loads((project / "output" / "experiments" / ids[0] / "experiment.json").read_text())["id"] == ids[0]
