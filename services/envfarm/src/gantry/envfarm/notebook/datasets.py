"""The data sets notebook tasks are built from: ones that ship inside installed packages
(scikit-learn's bundled sets, statsmodels' bundled sets), so tasks build offline.

Each loads as a pandas DataFrame with snake_case column names and is served to the
sandbox as CSV; tasks compute their answers from the CSV as read back, so the numbers the
host checks against are exactly the ones the agent's code can reach.
"""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import pandas as pd

Problem = Literal["classification", "binary", "regression"]


@dataclass(frozen=True)
class DataSet:
    name: str
    source: str  # the package that ships it
    description: str
    load: Callable[[], pd.DataFrame]
    group: str | None = None  # a categorical column for group-by questions
    label: str | None = None  # a column naming each row (argmax questions)
    target: str | None = None  # predicted column of prediction tasks
    problem: Problem | None = None
    positive: str | None = None  # positive class of a binary target (AUC)


def _snake(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.lower().replace("(cm)", "")).strip("_")


def _sklearn(loader: str, target: str, names: bool = True) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        from sklearn import datasets

        bunch = getattr(datasets, loader)(as_frame=True)
        frame = bunch.frame.rename(columns=_snake)
        if names:
            frame["target"] = [str(bunch.target_names[i]) for i in bunch.target]
        return frame.rename(columns={"target": target})

    return load


def _statsmodels(
    module: str, fix: Callable[[pd.DataFrame], pd.DataFrame] | None = None
) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        import importlib

        data = importlib.import_module(f"statsmodels.datasets.{module}")
        frame = data.load_pandas().data.copy()
        frame = frame.rename(columns=_snake)
        return fix(frame) if fix else frame

    return load


def _diabetes() -> pd.DataFrame:
    from sklearn import datasets

    frame = datasets.load_diabetes(as_frame=True, scaled=False).frame
    frame = frame.rename(columns={"target": "progression"})
    frame["sex"] = frame["sex"].map({1.0: "sex_1", 2.0: "sex_2"})
    return frame


def _digits() -> pd.DataFrame:
    from sklearn import datasets

    frame = datasets.load_digits(as_frame=True).frame
    return frame.rename(columns={"target": "digit"})


def _fair(frame: pd.DataFrame) -> pd.DataFrame:
    frame["had_affair"] = (frame["affairs"] > 0).map({True: "yes", False: "no"})
    frame["occupation"] = frame["occupation"].astype(int).map(lambda v: f"occupation_{v}")
    return frame.drop(columns=["affairs"])


def _anes96(frame: pd.DataFrame) -> pd.DataFrame:
    frame["vote"] = frame["vote"].map({0.0: "clinton", 1.0: "dole"})
    frame["pid"] = frame["pid"].astype(int).map(lambda v: f"pid_{v}")
    return frame.drop(columns=["logpopul"], errors="ignore")


def _statecrime() -> pd.DataFrame:
    from statsmodels.datasets import statecrime

    frame = statecrime.load_pandas().data.copy()
    frame.insert(0, "state", [str(s) for s in frame.index])
    return frame.reset_index(drop=True)


def _grunfeld(frame: pd.DataFrame) -> pd.DataFrame:
    frame["year"] = frame["year"].astype(int)
    return frame


def _modechoice(frame: pd.DataFrame) -> pd.DataFrame:
    names = {1.0: "air", 2.0: "train", 3.0: "bus", 4.0: "car"}
    frame["mode"] = frame["mode"].map(names)
    return frame


DATASETS: dict[str, DataSet] = {
    d.name: d
    for d in (
        DataSet(
            "iris",
            "scikit-learn",
            "Fisher's iris flowers: four measurements in cm and the species",
            _sklearn("load_iris", "species"),
            group="species",
            target="species",
            problem="classification",
        ),
        DataSet(
            "wine",
            "scikit-learn",
            "Chemical analysis of wines from three cultivars",
            _sklearn("load_wine", "cultivar"),
            group="cultivar",
            target="cultivar",
            problem="classification",
        ),
        DataSet(
            "breast_cancer",
            "scikit-learn",
            "Wisconsin breast cancer: 30 features of cell nuclei and the diagnosis",
            _sklearn("load_breast_cancer", "diagnosis"),
            group="diagnosis",
            target="diagnosis",
            problem="binary",
            positive="malignant",
        ),
        DataSet(
            "diabetes",
            "scikit-learn",
            "Diabetes patients: age, sex, BMI, blood pressure, six serum measurements and "
            "disease progression after one year",
            _diabetes,
            group="sex",
            target="progression",
            problem="regression",
        ),
        DataSet(
            "digits",
            "scikit-learn",
            "8x8 images of handwritten digits: 64 pixel intensities (0-16) and the digit",
            _digits,
            target="digit",
            problem="classification",
        ),
        DataSet(
            "grunfeld",
            "statsmodels",
            "Grunfeld's investment data: gross investment, firm value and capital stock of US "
            "firms, 1935-1954",
            _statsmodels("grunfeld", _grunfeld),
            group="firm",
            target="invest",
            problem="regression",
        ),
        DataSet(
            "fair",
            "statsmodels",
            "Fair's 1974 survey of married women: marriage rating, age, years married, "
            "children, religiousness, education, occupations and whether they had an affair",
            _statsmodels("fair", _fair),
            group="occupation",
            target="had_affair",
            problem="binary",
            positive="yes",
        ),
        DataSet(
            "anes96",
            "statsmodels",
            "American National Election Studies 1996: respondents' views, party identification "
            "and vote",
            _statsmodels("anes96", _anes96),
            group="pid",
            target="vote",
            problem="binary",
            positive="dole",
        ),
        DataSet(
            "statecrime",
            "statsmodels",
            "US states: violent crime and murder rates, high-school graduation, poverty, "
            "single-parent, white and urban shares",
            _statecrime,
            label="state",
        ),
        DataSet(
            "macrodata",
            "statsmodels",
            "US quarterly macroeconomic data 1959-2009",
            _statsmodels("macrodata"),
        ),
        DataSet(
            "modechoice",
            "statsmodels",
            "Travel mode choice between Sydney and Melbourne: one row per traveller and mode",
            _statsmodels("modechoice", _modechoice),
            group="mode",
        ),
        DataSet(
            "star98",
            "statsmodels",
            "California schools 1998: students above/below the national math median and school "
            "characteristics",
            _statsmodels("star98"),
        ),
    )
}


@functools.cache
def csv_bytes(name: str) -> bytes:
    """The data set as the CSV file the sandbox sees."""
    frame = DATASETS[name].load()
    text: str = frame.to_csv(index=False, float_format="%.10g")
    return text.encode("utf-8")


@functools.cache
def frame(name: str) -> pd.DataFrame:
    """The data set read back from its CSV (what the agent's code reads)."""
    return pd.read_csv(io.BytesIO(csv_bytes(name)))
