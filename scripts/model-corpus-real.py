#!/usr/bin/env python3
"""Writes benign model files with the real libraries, the way their users write them, so the
scanner is checked against what those libraries really produce (not against our emulation).

Run it with the venv that scripts/test.sh makes (target/model-venv: numpy, joblib,
scikit-learn, pandas, keras with the jax backend, h5py, safetensors; pinned there). PyTorch is
not installed: its PyPI wheel pulls several GB of CUDA libraries, so its writers are emulated
from torch/serialization.py in scripts/model-corpus.py.

Nothing here loads what it writes. Every file is listed in MANIFEST.json as benign.

usage: model-corpus-real.py OUTDIR
"""
import json
import os
import pickle
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import joblib  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier  # noqa: E402
from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.naive_bayes import MultinomialNB  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.svm import SVC  # noqa: E402

OUT = sys.argv[1] if len(sys.argv) > 1 else "target/model-corpus-real"
MANIFEST = []


def path(name, cls):
    p = os.path.join(OUT, name)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    MANIFEST.append({"file": name, "expect": "benign", "class": cls})
    return p


rng = np.random.RandomState(0)
X = rng.randn(200, 6)
y = (X[:, 0] + X[:, 1] > 0).astype(int)
arrays = {"weights": rng.randn(64, 32).astype(np.float32), "bias": np.zeros(32), "ids": np.arange(100, dtype=np.int64)}

# ---- joblib: the default dump holds arrays inline between pickle frames ----
joblib.dump(arrays, path("joblib/arrays.joblib", "joblib.dump of a dict of arrays (default)"))
joblib.dump(arrays, path("joblib/arrays_z3.joblib", "joblib.dump(compress=3) (zlib)"), compress=3)
for ext in ("gz", "bz2", "xz", "lzma"):
    joblib.dump(arrays, path(f"joblib/arrays.joblib.{ext}", f"joblib.dump compressed by extension (.{ext})"))
joblib.dump(arrays, path("joblib/arrays_p2.joblib", "joblib.dump(protocol=2)"), protocol=2)
joblib.dump([np.array(["a", "b", None], dtype=object)], path("joblib/object_array.joblib", "joblib.dump of an object array of strings"))

# ---- scikit-learn estimators, through joblib and pickle ----
models = {
    "logistic": LogisticRegression().fit(X, y),
    "forest": RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y),
    "boosting": GradientBoostingClassifier(n_estimators=5, random_state=0).fit(X, y),
    "scaled_svc": make_pipeline(StandardScaler(), SVC(probability=False)).fit(X, y),
    "kmeans": KMeans(n_clusters=3, n_init=2, random_state=0).fit(X),
}
docs = ["the cat sat", "the dog ran", "a cat and a dog", "nothing here"] * 5
models["tfidf_nb"] = make_pipeline(TfidfVectorizer(), MultinomialNB()).fit(docs, [0, 1, 1, 0] * 5)
for name, m in models.items():
    joblib.dump(m, path(f"sklearn/{name}.joblib", f"scikit-learn {type(m).__name__} via joblib.dump"))
    with open(path(f"sklearn/{name}.pkl", f"scikit-learn {type(m).__name__} via pickle.dump"), "wb") as f:
        pickle.dump(m, f)

# ---- pandas ----
df = pd.DataFrame({"a": np.arange(5), "b": np.linspace(0, 1, 5), "c": list("vwxyz"), "t": pd.date_range("2024-01-01", periods=5)})
df.to_pickle(path("pandas/frame.pkl", "DataFrame.to_pickle"))
joblib.dump(df, path("pandas/frame.joblib", "joblib.dump of a DataFrame"))

# ---- numpy ----
np.save(path("numpy/floats.npy", "np.save float32"), arrays["weights"])
np.save(path("numpy/fortran.npy", "np.save Fortran order"), np.asfortranarray(rng.randn(4, 3)))
np.save(path("numpy/unicode.npy", "np.save unicode strings"), np.array(["alpha", "beta"]))
np.save(path("numpy/datetime.npy", "np.save datetime64"), np.array(["2024-01-01", "2024-02-01"], dtype="datetime64[D]"))
structured = np.zeros(4, dtype=[("O", "<f8"), ("x", "<i4"), ("sub", "<f4", (2,))])
np.save(path("numpy/structured_O.npy", "np.save structured dtype with a field named O"), structured)
np.savez(path("numpy/arrays.npz", "np.savez"), **arrays)
np.savez_compressed(path("numpy/structured_O.npz", "np.savez_compressed structured dtype with a field named O"), a=structured, b=arrays["ids"])

# ---- safetensors ----
save_file({"w": arrays["weights"], "b": arrays["bias"]}, path("safetensors/model.safetensors", "safetensors.numpy.save_file with metadata"), metadata={"format": "np", "note": "a: b"})

# ---- Keras 3 ----
import keras  # noqa: E402

model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dropout(0.1), keras.layers.Dense(2)])
model.compile(loss=keras.losses.sparse_categorical_crossentropy, optimizer="adam", metrics=["accuracy"])
model.save(path("keras/sequential_fn_loss.keras", "Keras 3 model compiled with a function loss"))
model.save(path("keras/sequential_fn_loss.h5", "Keras 3 legacy .h5 save"))
model.save_weights(path("keras/weights_only.weights.h5", "Keras 3 weights-only file"))
inp = keras.Input((6,), name="features")
h = keras.layers.Dense(16, activation="gelu")(inp)
out = keras.layers.Dense(1, activation="sigmoid")(keras.layers.LayerNormalization()(h))
functional = keras.Model(inp, out)
functional.compile(loss="binary_crossentropy", optimizer=keras.optimizers.SGD(0.01), metrics=[keras.metrics.AUC()])
functional.save(path("keras/functional.keras", "Keras 3 functional model, string loss, metric object"))

with open(os.path.join(OUT, "MANIFEST.json"), "w") as f:
    json.dump(MANIFEST, f, indent=1)
print(f"{len(MANIFEST)} benign files written to {OUT} by numpy {np.__version__}, joblib {joblib.__version__}, "
      f"pandas {pd.__version__}, keras {keras.__version__}")
