"""DSGym-style notebook tasks, built offline and reproducibly from seeds.

Two types:
- analysis: a question about one data set (read-only at data/<name>.csv) with a
  checked answer (a number within a tolerance, a whole number, a label, an exact set);
- prediction: train on data/train.csv, predict data/test.csv and write submission.csv;
  scored against labels that stay on the host (never in the sandbox) with the task's
  metric, passing at a threshold derived from a trivial baseline.
Paths are relative to the workspace, the kernel's working directory.

Each template draws its columns and constants from a seeded generator; the answer and the
reference solution's code come with the question. The suite is every template on every
data set it applies to, minus the questions the shortcut filter (shortcut.py) flags.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from gantry.envfarm.notebook import datasets
from gantry.envfarm.notebook.grading import (
    HIGHER_IS_BETTER,
    AnswerKind,
    Metric,
    format_answer,
)

PREFIX = "dsgym/"
DATA_DIR = "data"  # relative to the workspace (the kernel's working directory)
SUBMISSION = "submission.csv"  # relative to the workspace
PREDICTION_SPLITS = 2  # prediction tasks per data set (different train/test splits)
TEST_FRACTION = 0.3
BASELINE_FRACTION = 0.9  # RMSE/MAE must beat this fraction of the trivial baseline's
AUC_THRESHOLD = 0.7

TaskType = Literal["analysis", "prediction"]


@dataclass(frozen=True)
class Task:
    id: str  # "dsgym/<data set>/<template>-<variant>"
    dataset: str
    template: str
    variant: int
    type: TaskType
    question: str
    reference_code: str
    metric: str  # analysis: "answer_match"; prediction: accuracy, rmse, auc, mae
    answer_kind: AnswerKind | None = None  # analysis
    expected: str = ""  # analysis: the canonical answer
    knobs: dict[str, str] = field(default_factory=dict)

    @property
    def higher_is_better(self) -> bool:
        return HIGHER_IS_BETTER.get(self.metric, True)

    @property
    def seed(self) -> int:
        """The generation seed (the task reproduces from data set, template and it)."""
        return task_seed(self.dataset, self.template, self.variant)

    @property
    def data_paths(self) -> list[str]:
        if self.type == "prediction":
            return [f"{DATA_DIR}/train.csv", f"{DATA_DIR}/test.csv"]
        return [f"{DATA_DIR}/{self.dataset}.csv"]


def task_seed(dataset: str, template: str, variant: int) -> int:
    digest = hashlib.sha256(f"{dataset}/{template}/{variant}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


@dataclass(frozen=True)
class _Question:
    text: str
    kind: AnswerKind
    value: object
    code: str  # computes the answer from `df` and prints it
    knobs: dict[str, str]


Template = Callable[[datasets.DataSet, pd.DataFrame, np.random.Generator], _Question | None]


def _numeric(df: pd.DataFrame, ds: datasets.DataSet) -> list[str]:
    """Numeric columns worth asking about (enough distinct values; not the target)."""
    return [
        c
        for c in df.columns
        if pd.api.types.is_numeric_dtype(df[c]) and df[c].nunique() > 5 and c != ds.target
    ]


def _pick(rng: np.random.Generator, items: list[str], k: int = 1) -> list[str]:
    return [str(x) for x in rng.choice(items, size=k, replace=False)]


def _mean(ds: datasets.DataSet, df: pd.DataFrame, rng: np.random.Generator) -> _Question:
    (c,) = _pick(rng, _numeric(df, ds))
    return _Question(
        f"What is the mean of {c}?",
        "number",
        df[c].mean(),
        f"print(df[{c!r}].mean())",
        {"column": c},
    )


def _median(ds: datasets.DataSet, df: pd.DataFrame, rng: np.random.Generator) -> _Question:
    (c,) = _pick(rng, _numeric(df, ds))
    return _Question(
        f"What is the median of {c}?",
        "number",
        df[c].median(),
        f"print(df[{c!r}].median())",
        {"column": c},
    )


def _std(ds: datasets.DataSet, df: pd.DataFrame, rng: np.random.Generator) -> _Question:
    (c,) = _pick(rng, _numeric(df, ds))
    return _Question(
        f"What is the sample standard deviation (ddof=1) of {c}?",
        "number",
        df[c].std(),
        f"print(df[{c!r}].std(ddof=1))",
        {"column": c},
    )


def _quantile(ds: datasets.DataSet, df: pd.DataFrame, rng: np.random.Generator) -> _Question:
    (c,) = _pick(rng, _numeric(df, ds))
    q = float(rng.choice([0.1, 0.25, 0.75, 0.9]))
    return _Question(
        f"What is the {q:g} quantile of {c} (linear interpolation between data points)?",
        "number",
        df[c].quantile(q),
        f"print(df[{c!r}].quantile({q!r}))",
        {"column": c, "quantile": f"{q:g}"},
    )


def _corr(ds: datasets.DataSet, df: pd.DataFrame, rng: np.random.Generator) -> _Question:
    x, y = _pick(rng, _numeric(df, ds), 2)
    return _Question(
        f"What is the Pearson correlation between {x} and {y}?",
        "number",
        df[x].corr(df[y]),
        f"print(df[{x!r}].corr(df[{y!r}]))",
        {"x": x, "y": y},
    )


def _slope(ds: datasets.DataSet, df: pd.DataFrame, rng: np.random.Generator) -> _Question:
    x, y = _pick(rng, _numeric(df, ds), 2)
    slope = float(np.polyfit(df[x].to_numpy(float), df[y].to_numpy(float), 1)[0])
    return _Question(
        f"Fit {y} = a + b * {x} by ordinary least squares. What is the slope b?",
        "number",
        slope,
        f"import numpy as np\nprint(np.polyfit(df[{x!r}], df[{y!r}], 1)[0])",
        {"x": x, "y": y},
    )


def _count_at_least(ds: datasets.DataSet, df: pd.DataFrame, rng: np.random.Generator) -> _Question:
    (c,) = _pick(rng, _numeric(df, ds))
    q = float(rng.choice([0.0, 0.25, 0.5, 0.75]))  # 0.0: every row (a shortcut)
    threshold = float(np.sort(df[c].to_numpy(float))[int(q * (len(df) - 1))])
    return _Question(
        f"How many rows have {c} greater than or equal to {threshold:.10g}?",
        "integer",
        int((df[c] >= threshold).sum()),
        f"print(int((df[{c!r}] >= {threshold!r}).sum()))",
        {"column": c, "threshold_quantile": f"{q:g}"},
    )


def _distinct(ds: datasets.DataSet, df: pd.DataFrame, rng: np.random.Generator) -> _Question:
    columns = [c for c in df.columns if c != ds.label]
    (c,) = _pick(rng, columns)
    return _Question(
        f"How many distinct values does the column {c} take?",
        "integer",
        df[c].nunique(),
        f"print(df[{c!r}].nunique())",
        {"column": c},
    )


def _top_corr(ds: datasets.DataSet, df: pd.DataFrame, rng: np.random.Generator) -> _Question | None:
    numeric = _numeric(df, ds)
    if len(numeric) < 6:
        return None
    (y,) = _pick(rng, numeric)
    corr = df[numeric].corr()[y].drop(y).abs().sort_values(ascending=False)
    if corr.iloc[2] - corr.iloc[3] < 1e-3:  # a near tie would make the set ambiguous
        return None
    return _Question(
        f"Which 3 of the numeric columns {', '.join(c for c in numeric if c != y)} have the "
        f"largest absolute Pearson correlation with {y}?",
        "set",
        frozenset(corr.index[:3]),
        f"cols = {[c for c in numeric if c != y]!r}\n"
        f"corr = df[cols].corrwith(df[{y!r}]).abs().sort_values(ascending=False)\n"
        "print(', '.join(sorted(corr.index[:3])))",
        {"y": y},
    )


def _group_argmax(
    ds: datasets.DataSet, df: pd.DataFrame, rng: np.random.Generator
) -> _Question | None:
    if ds.group is None:
        return None
    (c,) = _pick(rng, _numeric(df, ds))
    means = df.groupby(ds.group)[c].mean().sort_values(ascending=False)
    if len(means) > 1 and means.iloc[0] - means.iloc[1] < 1e-9:
        return None
    g = ds.group
    return _Question(
        f"Which value of {g} has the highest mean {c}?",
        "label",
        means.index[0],
        f"print(df.groupby({g!r})[{c!r}].mean().idxmax())",
        {"group": g, "column": c},
    )


def _groups_above(
    ds: datasets.DataSet, df: pd.DataFrame, rng: np.random.Generator
) -> _Question | None:
    if ds.group is None or df[ds.group].nunique() < 3:
        return None
    (c,) = _pick(rng, _numeric(df, ds))
    g = ds.group
    means = df.groupby(g)[c].mean()
    return _Question(
        f"Which values of {g} have a mean {c} above the overall mean of {c}?",
        "set",
        frozenset(str(v) for v in means[means > df[c].mean()].index),
        f"means = df.groupby({g!r})[{c!r}].mean()\n"
        f"print(', '.join(sorted(map(str, means[means > df[{c!r}].mean()].index))))",
        {"group": g, "column": c},
    )


def _group_count(
    ds: datasets.DataSet, df: pd.DataFrame, rng: np.random.Generator
) -> _Question | None:
    if ds.group is None:
        return None
    (v,) = _pick(rng, sorted(str(v) for v in df[ds.group].unique()))
    g = ds.group
    return _Question(
        f"How many rows have {g} equal to {v}?",
        "integer",
        int((df[g].astype(str) == v).sum()),
        f"print(int((df[{g!r}].astype(str) == {v!r}).sum()))",
        {"group": g, "value": v},
    )


def _label_argmax(
    ds: datasets.DataSet, df: pd.DataFrame, rng: np.random.Generator
) -> _Question | None:
    if ds.label is None:
        return None
    (c,) = _pick(rng, _numeric(df, ds))
    top = df.sort_values(c, ascending=False)
    if top[c].iloc[0] == top[c].iloc[1]:
        return None
    return _Question(
        f"Which {ds.label} has the highest {c}?",
        "label",
        top[ds.label].iloc[0],
        f"print(df.loc[df[{c!r}].idxmax(), {ds.label!r}])",
        {"column": c},
    )


ANALYSIS_TEMPLATES: dict[str, Template] = {
    "mean": _mean,
    "median": _median,
    "std": _std,
    "quantile": _quantile,
    "corr": _corr,
    "slope": _slope,
    "count_at_least": _count_at_least,
    "distinct": _distinct,
    "top_corr": _top_corr,
    "group_argmax": _group_argmax,
    "groups_above": _groups_above,
    "group_count": _group_count,
    "label_argmax": _label_argmax,
}
PREDICTION_METRIC: dict[str, Metric] = {
    "classification": "accuracy",
    "binary": "auc",
    "regression": "rmse",
}


def build(dataset: str, template: str, variant: int) -> Task | None:
    """The task for (data set, template, variant), or None when the template does not
    apply to that data set. Raises KeyError for an unknown data set or template."""
    ds = datasets.DATASETS[dataset]
    task_id = f"{PREFIX}{dataset}/{template}-{variant}"
    rng = np.random.default_rng(task_seed(dataset, template, variant))
    if template == "predict":
        if ds.target is None or ds.problem is None or variant >= PREDICTION_SPLITS:
            return None
        return _prediction_task(task_id, ds, variant)
    made = ANALYSIS_TEMPLATES[template](ds, datasets.frame(dataset), rng)
    if made is None:
        return None
    path = f"{DATA_DIR}/{dataset}.csv"
    code = f"import pandas as pd\ndf = pd.read_csv({path!r})\n{made.code}"
    return Task(
        id=task_id,
        dataset=dataset,
        template=template,
        variant=variant,
        type="analysis",
        question=made.text,
        reference_code=code,
        metric="answer_match",
        answer_kind=made.kind,
        expected=format_answer(made.kind, made.value),
        knobs=made.knobs,
    )


def _prediction_task(task_id: str, ds: datasets.DataSet, variant: int) -> Task:
    assert ds.target is not None and ds.problem is not None
    metric = PREDICTION_METRIC[ds.problem]
    target = ds.target
    what = {
        "accuracy": f"the {target} of each test row (one of the values seen in train.csv)",
        "auc": f"the probability that {target} is {ds.positive!r} for each test row",
        "rmse": f"{target} for each test row (a number)",
        "mae": f"{target} for each test row (a number)",
    }[metric]
    question = (
        f"Train a model on {DATA_DIR}/train.csv and predict {what} in {DATA_DIR}/test.csv. "
        f"Write {SUBMISSION} in the workspace with the columns id,{target} and one row per "
        f"test id. Scored by {metric}; passing needs {_threshold_words(metric)}."
    )
    if ds.problem == "regression":
        model = "Ridge(alpha=1.0)"
        imports = "from sklearn.linear_model import Ridge"
        predict = "model.predict(X_test)"
    else:
        model = "LogisticRegression(max_iter=5000)"
        imports = "from sklearn.linear_model import LogisticRegression"
        predict = (
            f"model.predict_proba(X_test)[:, list(model.classes_).index({ds.positive!r})]"
            if ds.problem == "binary"
            else "model.predict(X_test)"
        )
    code = (
        "import pandas as pd\n"
        "from sklearn.pipeline import make_pipeline\n"
        "from sklearn.preprocessing import StandardScaler\n"
        f"{imports}\n"
        f"train = pd.read_csv('{DATA_DIR}/train.csv')\n"
        f"test = pd.read_csv('{DATA_DIR}/test.csv')\n"
        f"X = pd.get_dummies(train.drop(columns=['id', {target!r}]), dtype=float)\n"
        "X_test = pd.get_dummies(test.drop(columns=['id']), dtype=float)"
        ".reindex(columns=X.columns, fill_value=0.0)\n"
        f"model = make_pipeline(StandardScaler(), {model}).fit(X, train[{target!r}])\n"
        f"pd.DataFrame({{'id': test['id'], {target!r}: {predict}}})"
        f".to_csv({SUBMISSION!r}, index=False)\n"
        f"print('wrote', len(test), 'predictions to {SUBMISSION}')"
    )
    return Task(
        id=task_id,
        dataset=ds.name,
        template="predict",
        variant=variant,
        type="prediction",
        question=question,
        reference_code=code,
        metric=metric,
        knobs={"split": str(variant), "test_fraction": f"{TEST_FRACTION:g}"},
    )


def _threshold_words(metric: str) -> str:
    return {
        "accuracy": "an accuracy at least halfway from the majority-class baseline to 1",
        "auc": f"an AUC of at least {AUC_THRESHOLD:g}",
        "rmse": "an RMSE at most 0.9 times that of predicting the training mean",
        "mae": "an MAE at most 0.9 times that of predicting the training median",
    }[metric]


@dataclass(frozen=True)
class PredictionData:
    """What a prediction task mounts (train/test CSVs) and what stays on the host."""

    files: dict[str, bytes]  # file name -> CSV (mounted read-only)
    truth: pd.Series  # hidden labels by test id (AUC: 1 for the positive class)
    threshold: float


def prediction_data(task: Task) -> PredictionData:
    return _split(task.dataset, task.seed, task.metric)


@functools.lru_cache(maxsize=64)
def _split(dataset: str, seed: int, metric: str) -> PredictionData:
    ds = datasets.DATASETS[dataset]
    assert ds.target is not None
    df = datasets.frame(dataset).copy()
    df.insert(0, "id", np.arange(len(df)))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(df))
    cut = round(len(df) * TEST_FRACTION)
    test, train = df.iloc[np.sort(order[:cut])], df.iloc[np.sort(order[cut:])]
    target = ds.target
    truth = test.set_index("id")[target]
    y_train = train[target]
    if metric == "auc":
        truth = (truth.astype(str) == ds.positive).astype(int)
        threshold = AUC_THRESHOLD
    elif metric == "accuracy":
        majority = float(y_train.value_counts(normalize=True).iloc[0])
        threshold = majority + 0.5 * (1.0 - majority)
        truth = truth.astype(str)
    else:
        baseline = float(y_train.mean() if metric == "rmse" else y_train.median())
        errors = truth.to_numpy(float) - baseline
        trivial = np.sqrt(np.mean(errors**2)) if metric == "rmse" else np.mean(np.abs(errors))
        threshold = BASELINE_FRACTION * float(trivial)
    files = {
        "train.csv": train.to_csv(index=False, float_format="%.10g").encode(),
        "test.csv": test.drop(columns=[target]).to_csv(index=False, float_format="%.10g").encode(),
    }
    return PredictionData(files, truth, threshold)


def data_files(task: Task) -> dict[str, bytes]:
    """The files of `task`'s data directory (never the hidden labels)."""
    if task.type == "prediction":
        return prediction_data(task).files
    return {f"{task.dataset}.csv": datasets.csv_bytes(task.dataset)}


TEMPLATES = (*ANALYSIS_TEMPLATES, "predict")


def all_tasks(variants: int = 1) -> list[Task]:
    """Every (data set, template, variant < `variants`) that makes a task (unfiltered)."""
    made = (
        build(name, template, v)
        for name in datasets.DATASETS
        for template in TEMPLATES
        for v in range(variants if template != "predict" else PREDICTION_SPLITS)
    )
    return [t for t in made if t is not None]


def parse_id(task_id: str) -> tuple[str, str, int]:
    """(data set, template, variant) of a wire id; ValueError when it is malformed."""
    if not task_id.startswith(PREFIX):
        raise ValueError(f"notebook task ids start with {PREFIX!r}")
    try:
        dataset, rest = task_id[len(PREFIX) :].split("/")
        template, variant = rest.rsplit("-", 1)
        number = int(variant)
    except ValueError:
        raise ValueError("expected dsgym/<data set>/<template>-<variant>") from None
    if number < 0 or str(number) != variant:
        raise ValueError("the variant must be a non-negative integer without padding")
    return dataset, template, number
