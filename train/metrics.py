"""Classification metrics from scikit-learn, and the plots that go with them."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn import metrics as skm


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def classification_report(y_true: np.ndarray, logits: np.ndarray, labels: list[str]) -> dict:
    """Accuracy, macro and per-class P/R/F1, confusion matrix and one-vs-rest ROC AUC.

    `labels` is the model's output order; y_true indexes it. AUC is defined only for
    classes present in y_true, and the macro AUC averages those (reported as such).
    """
    k = len(labels)
    probs = softmax(logits.astype(np.float64))
    y_pred = probs.argmax(1)
    ids = list(range(k))
    p, r, f, s = skm.precision_recall_fscore_support(y_true, y_pred, labels=ids, zero_division=0)
    present = [i for i in ids if (y_true == i).any()]
    auc = {i: float(skm.roc_auc_score(y_true == i, probs[:, i])) for i in present if (y_true != i).any()}
    mp, mr, mf, _ = skm.precision_recall_fscore_support(y_true, y_pred, labels=present, average="macro", zero_division=0)
    return {
        "n": int(len(y_true)),
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "macro_precision": float(mp), "macro_recall": float(mr), "macro_f1": float(mf),
        "macro_over": [labels[i] for i in present],
        "roc_auc_ovr_macro": float(np.mean(list(auc.values()))) if auc else None,
        "labels": labels,
        "per_class": {labels[i]: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                                  "support": int(s[i]), "roc_auc": auc.get(i)} for i in ids},
        "confusion_matrix": skm.confusion_matrix(y_true, y_pred, labels=ids).tolist(),
    }


def plot_confusion(report: dict, path: Path, title: str) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.array(report["confusion_matrix"])
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    disp = skm.ConfusionMatrixDisplay(cm, display_labels=report["labels"])
    disp.plot(ax=ax, cmap="Blues", colorbar=False, xticks_rotation=45, values_format="d")
    ax.set_title(f"{title}\naccuracy {report['accuracy']:.3f}, macro-F1 {report['macro_f1']:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_roc(y_true: np.ndarray, logits: np.ndarray, labels: list[str], path: Path, title: str) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    probs = softmax(logits.astype(np.float64))
    fig, ax = plt.subplots(figsize=(6, 5.5))
    for i, lab in enumerate(labels):
        if (y_true == i).any() and (y_true != i).any():
            fpr, tpr, _ = skm.roc_curve(y_true == i, probs[:, i])
            ax.plot(fpr, tpr, label=f"{lab} (AUC {skm.auc(fpr, tpr):.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"{title}\none-vs-rest ROC")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
