"""Tags that split every report: copyable or not, CrossCodeEval-filtered or not, old or new package.

``copyable``
    the task's line occurs verbatim (whitespace stripped) elsewhere in the repository, so
    similar-code retrieval can show the answer itself (`benchmarks.figures.LineCensus`).
``cceval``
    the task passes CrossCodeEval's post-processing filters, as far as the paper describes
    them (Ding et al., 2023, section 2, "post-processing and quality control"): rule-based
    filters on the reference, and a model-based filter that drops what a small code model
    completes exactly from the current file alone. The paper's exact thresholds are not
    restated here; the rules below are the ones implemented, each named in the record
    (``cceval_fail``) so a report can say which removed what:

    * ``short``: a reference of fewer than `MIN_REFERENCE_TOKENS` lexical tokens (``\\w+``
      runs and single punctuation marks): nothing to complete;
    * ``comment``: a reference that is only a comment;
    * ``in_file``: the reference's whole line already occurs in the current file's text
      before or after it (the current file answers it, no cross-file context needed);
    * ``infile_exact`` (model-based, applied by the report: ``python -m benchmarks.report
      DIR --filter-model FILTER_DIR``, FILTER_DIR an in-file run of the filter model on the
      same tasks): the filter model, given the current file only, completes the reference
      exactly. The paper used StarCoderBase-1B; here SmolLM2-135M, a model other than the
      one evaluated, so the evaluated model's in-file exact match on the filtered tasks is
      not zero by construction.
``package_age``
    ``new`` (first released 2025 or later), ``old``, or ``unknown`` (`benchmarks.splits`).
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from .figures import LineCensus, original_line
from .metrics import remove_comments
from .splits import package_age, split_of
from .tasks import Task

__all__ = ["MIN_REFERENCE_TOKENS", "apply_model_filter", "rule_failures", "tag_task", "task_tags"]

MIN_REFERENCE_TOKENS = 3
_LEXICAL = re.compile(r"\w+|[^\w\s]")


def rule_failures(task: Task) -> list[str]:
    """The CrossCodeEval rule-based filters a task fails (empty: it passes)."""
    failed = []
    reference = task.groundtruth
    if len(_LEXICAL.findall(reference)) < MIN_REFERENCE_TOKENS:
        failed.append("short")
    if reference.strip() and not remove_comments(reference, task.language or None).strip():
        failed.append("comment")
    line = original_line(task).strip()
    others = {row.strip() for row in (task.prompt + task.right_context).split("\n")}
    if line and line in others:
        failed.append("in_file")
    return failed


def tag_task(task: Task, census: LineCensus | None) -> None:
    """Compute a task's tags into its metadata (kept by every record made from it)."""
    task.metadata["cceval_fail"] = rule_failures(task)
    if census is not None:
        task.metadata["copyable"] = census.copyable(task)
        task.metadata["unique_line"] = census.unique(task)
    task.metadata["package_age"] = package_age(task.repo)
    task.metadata["split"] = split_of(task.repo)


def task_tags(task: Task) -> dict[str, Any]:
    """The tags a result record carries."""
    meta = task.metadata
    tags: dict[str, Any] = {
        "cceval": int(not meta.get("cceval_fail")),
        "cceval_fail": list(meta.get("cceval_fail", [])),
        "package_age": meta.get("package_age", "unknown"),
        "split": meta.get("split", "other"),
    }
    if "copyable" in meta:
        tags["copyable"] = int(bool(meta["copyable"]))
    if "independent_gold" in meta:
        tags["resolver_agree"] = int(bool(meta.get("resolver_agree")))
    return tags


def tag_all(tasks: Iterable[Task], census: LineCensus | None) -> None:
    for task in tasks:
        tag_task(task, census)


def apply_model_filter(records: list[dict], filter_records: Iterable[dict]) -> dict[str, int]:
    """CrossCodeEval's model-based filter, from a separate in-file run of the filter model.

    `filter_records` are the ``infile`` records of another model on the same tasks
    (``python -m benchmarks.cceval --model smollm2-135m --strategies infile``); a task that model
    completes exactly from the current file alone fails the filter (``infile_exact``) in every
    record of `records`, which are changed in place. Tasks the filter run lacks are marked
    ``filter_model: "none"`` and keep their rule-based tag, so a report can say how many were
    checked. Returns the counts: tasks checked, removed, and not covered.
    """
    exact: dict[str, bool] = {}
    model = ""
    for record in filter_records:
        if record.get("strategy") != "infile" or "em" not in record:
            continue
        exact[record["task_id"]] = bool(record["em"])
        model = record.get("model", model)
    counts = {"checked": 0, "removed": 0, "not_covered": 0}
    seen: set[str] = set()
    for record in records:
        task = record["task_id"]
        first = task not in seen
        seen.add(task)
        if task not in exact:
            record["filter_model"] = "none"
            counts["not_covered"] += first
            continue
        record["filter_model"] = model
        counts["checked"] += first
        if exact[task]:
            failed = list(record.get("cceval_fail", []))
            if "infile_exact" not in failed:
                failed.append("infile_exact")
            record["cceval_fail"] = failed
            record["cceval"] = 0
            counts["removed"] += first
    return counts
