#!/usr/bin/env python3
"""Constants of the spectral entropy's log2 (operators/src/features/welch.rs, `log2`).

x = 2^e * m with m in [1 - 1/64, 2 - 1/32); j = round(16 (m - 1)) in 0..16 (mod 16, so
m just below 1 takes entry 0); c_j = 1 + j/16, INVC[j] = 1/c_j rounded to f64 (INVC[0] = 1
exactly, so log2 of a power of two is exact), LOGC[j] = -log2(INVC[j]) rounded to f64.
Then r = m * INVC[j] - 1 (one FMA) lies in [-1/32, 1/32], and
ln(1 + r) = r + r^2 P(r) with P the degree-7 polynomial interpolating
(ln(1 + r) - r) / r^2 at the Chebyshev nodes of [-1/32, 1/32].

Prints the constants as Rust literals and the worst relative error of
r + r^2 P(r) against ln(1 + r) in 60-digit arithmetic (the polynomial's own
error, before f64 rounding: about 2e-17, a fifth of an ulp).

Needs mpmath (a SymPy dependency). Run: python3 scripts/make_log2_tables.py
"""

import mpmath as mp

mp.mp.dps = 60
ENTRIES = 16
DEGREE = 7
R = mp.mpf(1) / 32


def g(r):
    """(ln(1 + r) - r) / r^2, by its series near 0 where the quotient cancels."""
    if abs(r) < mp.mpf(10) ** -20:
        return -mp.mpf(1) / 2 + r / 3 - r**2 / 4
    return (mp.log1p(r) - r) / r**2


def main():
    invc = [float(1 / (1 + mp.mpf(j) / ENTRIES)) for j in range(ENTRIES)]
    logc = [float(-mp.log(mp.mpf(v), 2)) for v in invc]
    nodes = [R * mp.cos(mp.pi * (k + mp.mpf(1) / 2) / (DEGREE + 1)) for k in range(DEGREE + 1)]
    vandermonde = mp.matrix([[x**i for i in range(DEGREE + 1)] for x in nodes])
    coefficients = [float(c) for c in mp.lu_solve(vandermonde, mp.matrix([g(x) for x in nodes]))]
    worst = mp.mpf(0)
    for k in range(-4000, 4001):
        r = R * k / 4000
        if r == 0:
            continue
        p = sum(mp.mpf(c) * r**i for i, c in enumerate(coefficients))
        worst = max(worst, abs(r + r * r * p - mp.log1p(r)) / abs(mp.log1p(r)))
    print("const LOG2_INVC: [f64; 16] = [" + ", ".join(repr(v) for v in invc) + "];")
    print("const LOG2_LOGC: [f64; 16] = [" + ", ".join(repr(v) for v in logc) + "];")
    print("const LOG2_P: [f64; 8] = [" + ", ".join(repr(v) for v in coefficients) + "];")
    print(f"// worst relative error of r + r^2 P(r) on [-1/32, 1/32]: {float(worst):.3e}")


if __name__ == "__main__":
    main()
