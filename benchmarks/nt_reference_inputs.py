"""Build the reference-mode input for /tmp/nt_reference.json (scratch, not in repo)."""
import json
import numpy as np

rng = np.random.default_rng(123)
x1 = rng.standard_normal((5, 7))
x2 = rng.standard_normal((4, 7))

def L(name, *args, **kwargs):
    d = {"layer": name}
    if args: d["args"] = list(args)
    if kwargs: d["kwargs"] = kwargs
    return d

def net(act, param=None, bias=True):
    kw = {} if param is None else {"parameterization": param}
    def dense(n, w, b):
        return L("Dense", n, W_std=w, b_std=(b if bias else None), **kw)
    return [dense(3, 1.3, 0.2), act, dense(2, 0.9, 0.1), act, dense(1, 1.1, 0.3)]

acts = {
    "Relu": L("Relu"),
    "LeakyRelu(0.1)": L("LeakyRelu", 0.1),
    "ABRelu(-0.3,0.7)": L("ABRelu", -0.3, 0.7),
    "Abs": L("Abs"),
    "Erf": L("Erf"),
    "Erf(a=1.2,b=0.7,c=0.1)": L("Erf", a=1.2, b=0.7, c=0.1),
    "Sigmoid_like": L("Sigmoid_like"),
    "Gelu": L("Gelu"),
    "Sin": L("Sin"),
    "Sin(a=0.8,b=1.3,c=0.4)": L("Sin", a=0.8, b=1.3, c=0.4),
    "Cos": L("Cos"),
    "Rbf(0.5)": L("Rbf", 0.5),
    "Exp(a=0.6,b=0.3)": L("Exp", a=0.6, b=0.3),
    "Gaussian(a=1.0,b=-0.6)": L("Gaussian", a=1.0, b=-0.6),
    "Sign": L("Sign"),
    "Monomial(2)": L("Monomial", 2),
    "Monomial(3)": L("Monomial", 3),
    **{f"RectifiedMonomial({k})": L("RectifiedMonomial", k) for k in range(4)},
    "Polynomial([0.1,-0.4,0.3,0.2])": L("Polynomial", [0.1, -0.4, 0.3, 0.2]),
    "Identity": L("Identity"),
}
networks = {name: net(a) for name, a in acts.items()}
networks["standard/Relu"] = net(L("Relu"), param="standard")
networks["standard_nobias/Relu"] = net(L("Relu"), param="standard", bias=False)
# NT 0.6.5 evaluates RectifiedMonomial's own-variance (theta=0) term as NaN,
# which poisons every entry once a second activation layer follows; with a
# single activation layer only the x1_x1 diagonal is affected.
for k in range(4):
    networks[f"RectifiedMonomial({k})/one_layer"] = [
        L("Dense", 3, W_std=1.3, b_std=0.2), L("RectifiedMonomial", k),
        L("Dense", 1, W_std=1.1, b_std=0.3)]
networks["dense_only"] = [L("Dense", 1, W_std=1.5, b_std=0.1)]

def unit(x):
    return x * np.sqrt(x.shape[1]) / np.linalg.norm(x, axis=1, keepdims=True)

networks["Hermite(2)/unit"] = {
    "layers": [L("Dense", 3, W_std=1.0), L("Hermite", 2), L("Dense", 1, W_std=1.0)],
    "x1": unit(x1).tolist(),
    "x2": unit(x2).tolist(),
}
spec = {"dtype": "float64", "x1": x1.tolist(), "x2": x2.tolist(), "networks": networks}
json.dump(spec, open("/tmp/ntref/input.json", "w"), indent=1)
print(len(networks))
