"""Write the input spec from which neural-tangents computes tests/data/nt_reference.json.

    python benchmarks/nt_reference_inputs.py /tmp/nt_ref_input.json
    /tmp/ntkrs-peer-venv/bin/python benchmarks/_nt_peer.py --reference /tmp/nt_ref_input.json \\
        > tests/data/nt_reference.json

Every network is serial(Dense(3, 1.3, 0.2), ACT, Dense(2, 0.9, 0.1), ACT, Dense(1, 1.1, 0.3)) on
x1, x2 drawn from default_rng(123) (5 x 7 and 4 x 7), plus a few special cases below.
"""

import json
import sys

import numpy as np


def layer(name, *args, **kwargs):
    d = {"layer": name}
    if args:
        d["args"] = list(args)
    if kwargs:
        d["kwargs"] = kwargs
    return d


def net(act, param=None, bias=True):
    kw = {} if param is None else {"parameterization": param}

    def dense(n, w, b):
        return layer("Dense", n, W_std=w, b_std=(b if bias else None), **kw)

    return [dense(3, 1.3, 0.2), act, dense(2, 0.9, 0.1), act, dense(1, 1.1, 0.3)]


def unit(x):
    return x * np.sqrt(x.shape[1]) / np.linalg.norm(x, axis=1, keepdims=True)


def main(path):
    rng = np.random.default_rng(123)
    x1 = rng.standard_normal((5, 7))
    x2 = rng.standard_normal((4, 7))
    acts = {
        "Relu": layer("Relu"),
        "LeakyRelu(0.1)": layer("LeakyRelu", 0.1),
        "ABRelu(-0.3,0.7)": layer("ABRelu", -0.3, 0.7),
        "Abs": layer("Abs"),
        "Erf": layer("Erf"),
        "Erf(a=1.2,b=0.7,c=0.1)": layer("Erf", a=1.2, b=0.7, c=0.1),
        "Sigmoid_like": layer("Sigmoid_like"),
        "Gelu": layer("Gelu"),
        "Sin": layer("Sin"),
        "Sin(a=0.8,b=1.3,c=0.4)": layer("Sin", a=0.8, b=1.3, c=0.4),
        "Cos": layer("Cos"),
        "Rbf(0.5)": layer("Rbf", 0.5),
        "Exp(a=0.6,b=0.3)": layer("Exp", a=0.6, b=0.3),
        "Gaussian(a=1.0,b=-0.6)": layer("Gaussian", a=1.0, b=-0.6),
        "Sign": layer("Sign"),
        "Monomial(2)": layer("Monomial", 2),
        "Monomial(3)": layer("Monomial", 3),
        **{f"RectifiedMonomial({k})": layer("RectifiedMonomial", k) for k in range(4)},
        "Polynomial([0.1,-0.4,0.3,0.2])": layer("Polynomial", [0.1, -0.4, 0.3, 0.2]),
        "Identity": layer("Identity"),
    }
    networks = {name: net(a) for name, a in acts.items()}
    networks["standard/Relu"] = net(layer("Relu"), param="standard")
    networks["standard_nobias/Relu"] = net(layer("Relu"), param="standard", bias=False)
    # neural-tangents 0.6.5 evaluates RectifiedMonomial's own-variance term (θ = 0) as NaN, which
    # poisons every entry once a second activation follows; with one activation only the diagonal.
    for k in range(4):
        networks[f"RectifiedMonomial({k})/one_layer"] = [
            layer("Dense", 3, W_std=1.3, b_std=0.2), layer("RectifiedMonomial", k),
            layer("Dense", 1, W_std=1.1, b_std=0.3)]
    networks["dense_only"] = [layer("Dense", 1, W_std=1.5, b_std=0.1)]
    networks["Hermite(2)/unit"] = {
        "layers": [layer("Dense", 3, W_std=1.0), layer("Hermite", 2), layer("Dense", 1, W_std=1.0)],
        "x1": unit(x1).tolist(),
        "x2": unit(x2).tolist(),
    }
    spec = {"dtype": "float64", "x1": x1.tolist(), "x2": x2.tolist(), "networks": networks}
    with open(path, "w") as f:
        json.dump(spec, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "nt_ref_input.json")
