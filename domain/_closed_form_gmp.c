/* The finder's closed-form sizing of one round trip through two pools, on GMP integers.
 *
 * Why: a gap-opening pool update sizes each of its opportunities with ~100 exact big-integer
 * operations (products of ~250-1,150 bits, square roots of ~500 bits, the legs' exact quotes), each
 * ~0.1-3 us as Python integers and a fraction of that on GMP's, with no interpreter in between.
 *
 * What: ``closed_form(leg_a, leg_b, max_in_a, max_in_b, need)`` is ``domain/arb_finder.py``'s ``_closed_form``
 * (with ``_finish``: top down, or the pattern search over a wide interval) on its common paths, step for step the same arithmetic
 * (RoundTrip's n, p, r; ``_largest_feeding``; ``below``; the relaxed trip's ``max_profit_bound``;
 * ``optimum`` from the relaxed one; ``level_interval``; ``_top_down`` over ``floored_level_intervals``
 * or ``level_interval_exact``) and the legs' quotes (``PoolVenue.quote``: V2 ``getAmountOut``; V3
 * inside its interval, the two inlined SqrtPriceMath forms). It answers
 *   None                 proven: nothing pays (what ``_closed_form`` returns as None),
 *   (x, p, proven, y, z) the size, its exact profit, proven (False: the pattern search's local
 *                        optimum, as the Python's), and the legs' outputs at it,
 *   False                not this path: anything else (a quote the inlined forms do not price, the
 *                        best_size or pattern search, a size that beats its level, a skip by the legs'
 *                        inverses...): the caller runs the Python, which is the reference.
 * The Python is the reference: tests/test_arb_finder_compiled.py holds the answers equal (and counts
 * that this path answered, and that it declined).
 *
 * The arguments: a leg is (0, reserve_in, reserve_out, keep_bps) for a V2 pair or (1, sqrt_price,
 * liquidity, edge sqrt price, amount to the edge, keep_pips, zero_for_one) for a V3 pool priced inside
 * its tick-spacing interval (``PoolVenue._priced``); ``max_in_a``/``max_in_b`` the legs' capacities
 * (``PoolVenue.max_in``); ``need`` the least profit that is reported. All exact ``int``s. Each leg's
 * ``Curve`` (``PoolVenue.curve``: its virtual reserves over a common denominator) is derived here
 * from the leg, as the Python derives it (``curve_of``), so the caller builds none.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <gmp.h>
#include <math.h>

#define NT 48
static mpz_t T[NT];               /* scratch, made once (the GIL is held throughout: no re-entry) */
static mpz_t MAX_UINT256, MAX_UINT160, MAX_INT256, NEVER;  /* NEVER: arb_finder's, 2^256 */

typedef struct {
    int kind, zfo;
    mpz_t a, b, target, raw;      /* V2: reserve in, reserve out; V3: sqrt price, liquidity, edge, raw */
    mpz_t n1, n1sp;               /* V3: lq << 96 and, token0 in, (lq << 96)*sp: the same in every quote */
    mpz_t ri, ro, den;            /* its Curve (curve_of), made when read: closed_form's, kept with the leg */
    unsigned long ck, c_big_k;
    int c_period;
    unsigned long keep;
    int v2_small;                 /* V2: a < 2^112 and b < 2^128 (as a_u, b_u): quote's 128-bit path */
    unsigned __int128 a_u, b_u;
    int b_bits;
    double da, db, dtarget, draw; /* a, b, target, raw as doubles (truncated: each <= its int), for bound() */
    int at_edge;                  /* V3: sp == target (no quote there), for bound() */
} leg_t;

static leg_t LA, LB;

typedef unsigned __int128 u128;

static inline int bits_u128(u128 v)
{
    unsigned long long hi = (unsigned long long)(v >> 64), lo = (unsigned long long)v;
    return hi ? 128 - __builtin_clzll(hi) : (lo ? 64 - __builtin_clzll(lo) : 0);
}

static u128 to_u128(const mpz_t z)           /* z in [0, 2^128) */
{
    size_t n = mpz_size(z);
    u128 v = n > 0 ? (u128)mpz_getlimbn(z, 0) : 0;
    if (n > 1)
        v |= (u128)mpz_getlimbn(z, 1) << 64;
    return v;
}

/* z = v (GMP's limbs written directly: no intermediate products) */
static inline void put_u128(mpz_ptr z, u128 v)
{
    if (v >> 64) {
        mp_limb_t *p = mpz_limbs_write(z, 2);
        p[0] = (mp_limb_t)v;
        p[1] = (mp_limb_t)(v >> 64);
        mpz_limbs_finish(z, 2);
    } else {
        mpz_set_ui(z, (unsigned long)v);
    }
}
/* the leg tuples LA and LB were last read from (held: an object's address is not reused while it lives),
 * so that the leg of the pool an update moved, the same tuple for each of its partners, is read once */
static PyObject *LA_SRC, *LB_SRC;

/* ---------------------------------------------------------------- floor and ceiling divisions */

/* mpz_fdiv_q / mpz_cdiv_q, the same values, by GMP's truncating quotient where the operands are
 * non-negative (nearly always: sizes, reserves, prices), which needs no remainder: ~30% cheaper than
 * fdiv_q's and cdiv_q's sign adjustments (a remainder each), on the 3-5-limb operands of the quotes.
 * ceil(n/d) = floor((n - 1)/d) + 1 for n >= 1, d >= 1. Any other signs: GMP's own. */
static mpz_t DIV_T;
static inline void floor_q(mpz_ptr q, mpz_srcptr n, mpz_srcptr d)
{
    if (mpz_sgn(n) >= 0 && mpz_sgn(d) > 0)
        mpz_tdiv_q(q, n, d);
    else
        mpz_fdiv_q(q, n, d);
}

static inline void ceil_q(mpz_ptr q, mpz_srcptr n, mpz_srcptr d)
{
    if (mpz_sgn(n) > 0 && mpz_sgn(d) > 0) {
        mpz_sub_ui(DIV_T, n, 1);
        mpz_tdiv_q(q, DIV_T, d);
        mpz_add_ui(q, q, 1);
    } else {
        mpz_cdiv_q(q, n, d);
    }
}

static inline void floor_q_ui(mpz_ptr q, mpz_srcptr n, unsigned long d)
{
    if (mpz_sgn(n) >= 0)
        mpz_tdiv_q_ui(q, n, d);
    else
        mpz_fdiv_q_ui(q, n, d);
}

static inline void ceil_q_ui(mpz_ptr q, mpz_srcptr n, unsigned long d)
{
    if (mpz_sgn(n) > 0 && d > 0) {
        mpz_sub_ui(DIV_T, n, 1);
        mpz_tdiv_q_ui(q, DIV_T, d);
        mpz_add_ui(q, q, 1);
    } else {
        mpz_cdiv_q_ui(q, n, d);
    }
}

/* ---------------------------------------------------------------- int <-> mpz */

#if PY_VERSION_HEX < 0x030C0000 && PY_VERSION_HEX >= 0x030B0000 && GMP_NUMB_BITS == 64 && GMP_NAIL_BITS == 0
/* CPython 3.11's int is its 30-bit digits, least significant first (longintrepr.h): GMP reads and
 * writes them directly (two nail bits per 32-bit digit), no byte buffer in between. */
#define DIGITS_DIRECT 1
#endif

static int from_py(mpz_t z, PyObject *o)
{
    if (!PyLong_CheckExact(o))
        return -1;
#ifdef DIGITS_DIRECT
    Py_ssize_t size = Py_SIZE(o);
    size_t nd = (size_t)(size < 0 ? -size : size), n = 0;
    const digit *dg = ((PyLongObject *)o)->ob_digit;
    mp_limb_t *limbs = mpz_limbs_write(z, (mp_size_t)(nd * PyLong_SHIFT / GMP_NUMB_BITS + 1));
    mp_limb_t cur = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < nd; i++) {  /* 30-bit digits packed into 64-bit limbs, least significant first */
        mp_limb_t dd = dg[i];
        cur |= dd << bits;
        bits += PyLong_SHIFT;
        if (bits >= GMP_NUMB_BITS) {
            limbs[n++] = cur;
            bits -= GMP_NUMB_BITS;
            cur = bits ? dd >> (PyLong_SHIFT - bits) : 0;
        }
    }
    if (bits)
        limbs[n++] = cur;
    while (n > 0 && limbs[n - 1] == 0)
        n--;
    mpz_limbs_finish(z, size < 0 ? -(mp_size_t)n : (mp_size_t)n);
    return 0;
#endif
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (!overflow) {
        if (v == -1 && PyErr_Occurred())
            return -1;
        if (v >= LONG_MIN && v <= LONG_MAX) {
            mpz_set_si(z, (long)v);
            return 0;
        }
    }
    size_t nbits = _PyLong_NumBits(o);
    if (nbits == (size_t)-1 && PyErr_Occurred())
        return -1;
    int neg = _PyLong_Sign(o) < 0;
    size_t nbytes = nbits / 8 + 1;
    unsigned char buf[512];
    unsigned char *p = nbytes <= sizeof buf ? buf : PyMem_Malloc(nbytes);
    if (p == NULL)
        return -1;
    PyObject *mag = neg ? PyNumber_Negative(o) : (Py_INCREF(o), o);
    int rc = mag == NULL ? -1 : _PyLong_AsByteArray((PyLongObject *)mag, p, nbytes, 1, 0);
    Py_XDECREF(mag);
    if (rc == 0) {
        mpz_import(z, nbytes, -1, 1, 0, 0, p);
        if (neg)
            mpz_neg(z, z);
    }
    if (p != buf)
        PyMem_Free(p);
    return rc;
}

static PyObject *to_py(const mpz_t z)
{
    if (mpz_fits_slong_p(z))
        return PyLong_FromLong(mpz_get_si(z));
#ifdef DIGITS_DIRECT
    size_t ndigits = (mpz_sizeinbase(z, 2) + PyLong_SHIFT - 1) / PyLong_SHIFT, nl = mpz_size(z), li = 0;
    PyLongObject *l = _PyLong_New((Py_ssize_t)ndigits);
    if (l == NULL)
        return NULL;
    const mp_limb_t *limbs = mpz_limbs_read(z);
    unsigned __int128 acc = 0;
    int bits = 0;
    for (size_t i = 0; i < ndigits; i++) {  /* 64-bit limbs unpacked into 30-bit digits (from_py's inverse) */
        if (bits < PyLong_SHIFT && li < nl) {
            acc |= (unsigned __int128)limbs[li++] << bits;
            bits += GMP_NUMB_BITS;
        }
        l->ob_digit[i] = (digit)(acc & PyLong_MASK);
        acc >>= PyLong_SHIFT;
        bits -= PyLong_SHIFT;
    }
    Py_SET_SIZE(l, mpz_sgn(z) < 0 ? -(Py_ssize_t)ndigits : (Py_ssize_t)ndigits);
    return (PyObject *)l;
#endif
    size_t nbytes = (mpz_sizeinbase(z, 2) + 7) / 8, count = 0;
    unsigned char buf[512];
    unsigned char *p = nbytes <= sizeof buf ? buf : PyMem_Malloc(nbytes);
    if (p == NULL)
        return PyErr_NoMemory();
    mpz_export(p, &count, -1, 1, 0, 0, z);
    PyObject *mag = _PyLong_FromByteArray(p, count, 1, 0);
    if (p != buf)
        PyMem_Free(p);
    if (mag == NULL || mpz_sgn(z) >= 0)
        return mag;
    PyObject *out = PyNumber_Negative(mag);
    Py_DECREF(mag);
    return out;
}

static int item(mpz_t z, PyObject *tuple, Py_ssize_t i)
{
    return from_py(z, PyTuple_GET_ITEM(tuple, i));
}

static int small_item(unsigned long *out, PyObject *tuple, Py_ssize_t i)
{
    PyObject *o = PyTuple_GET_ITEM(tuple, i);
    if (!PyLong_CheckExact(o))
        return -1;
    long v = PyLong_AsLong(o);
    if (v == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return -1;
    }
    if (v <= 0)
        return -1;
    *out = (unsigned long)v;
    return 0;
}

static int read_leg_now(leg_t *L, PyObject *t);
static int curve_of(const leg_t *L, mpz_t ri, mpz_t ro, mpz_t den, unsigned long *k, unsigned long *big_k);

/* read_leg into LA or LB (slot), unless it holds t's already (a tuple is immutable, its ints too) */
static int read_leg_kept(leg_t *L, PyObject **src, PyObject *t)
{
    if (*src == t && t != NULL)
        return 0;
    Py_CLEAR(*src);
    if (read_leg_now(L, t))
        return -1;
    L->c_period = curve_of(L, L->ri, L->ro, L->den, &L->ck, &L->c_big_k);
    Py_INCREF(t);
    *src = t;
    return 0;
}

/* read_leg for the tests' single-leg calls: LA is then no longer the last closed_form's */
static int read_leg(leg_t *L, PyObject *t)
{
    if (L == &LA)
        Py_CLEAR(LA_SRC);
    if (L == &LB)
        Py_CLEAR(LB_SRC);
    return read_leg_now(L, t);
}

static int read_leg_now(leg_t *L, PyObject *t)
{
    if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) < 4)
        return -1;
    PyObject *k = PyTuple_GET_ITEM(t, 0);
    if (!PyLong_CheckExact(k))
        return -1;
    L->kind = (int)PyLong_AsLong(k);
    if (L->kind == 0) {
        if (PyTuple_GET_SIZE(t) != 4 || item(L->a, t, 1) || item(L->b, t, 2) || small_item(&L->keep, t, 3))
            return -1;
        L->v2_small = mpz_sgn(L->a) > 0 && mpz_sgn(L->b) > 0 && mpz_sizeinbase(L->a, 2) <= 112 &&
                      mpz_sizeinbase(L->b, 2) <= 128 && L->keep < (1UL << 14);
        if (L->v2_small) {
            L->a_u = to_u128(L->a);
            L->b_u = to_u128(L->b);
            L->b_bits = (int)mpz_sizeinbase(L->b, 2);
        }
        return mpz_sgn(L->a) > 0 && mpz_sgn(L->b) > 0 ? 0 : -1;
    }
    if (L->kind != 1 || PyTuple_GET_SIZE(t) != 7 || item(L->a, t, 1) || item(L->b, t, 2) || item(L->target, t, 3) ||
        item(L->raw, t, 4) || small_item(&L->keep, t, 5))
        return -1;
    L->zfo = PyObject_IsTrue(PyTuple_GET_ITEM(t, 6));
    if (L->zfo < 0)
        return -1;
    mpz_mul_2exp(L->n1, L->b, 96);
    if (L->zfo)
        mpz_mul(L->n1sp, L->n1, L->a);
    return mpz_sgn(L->a) > 0 && mpz_sgn(L->b) > 0 ? 0 : -1;
}

/* ---------------------------------------------------------------- the legs' quotes */

/* PoolVenue.quote where it prices without a fallback: 0 with out set, -1 for anything else. */
static int quote(const leg_t *L, mpz_t out, const mpz_t x)
{
    mpz_ptr t0 = T[40], t1 = T[41], t2 = T[42], less = T[43], sn = T[44];
    if (mpz_sgn(x) <= 0)
        return -1;
    if (L->kind == 0) {  /* getAmountOut: x*k*ro // (ri*1e4 + x*k), 0 -> None */
        if (L->v2_small && mpz_size(x) == 1) {
            /* the same integers in 128 bits where they fit: x*k < 2^78, x*k*ro < 2^128 by their bit lengths,
             * ri*1e4 + x*k < 2^126 + 2^78 (ri < 2^112, as every V2 pair's uint112 reserves) */
            u128 xk = (u128)mpz_getlimbn(x, 0) * L->keep;
            if (bits_u128(xk) + L->b_bits <= 128) {
                u128 q = xk * L->b_u / (L->a_u * 10000u + xk);
                if (q == 0)
                    return -1;
                put_u128(out, q);
                return 0;
            }
        }
        mpz_mul_ui(t0, x, L->keep);
        mpz_mul(t1, t0, L->b);
        mpz_mul_ui(t2, L->a, 10000);
        mpz_add(t2, t2, t0);
        floor_q(out, t1, t2);
        return mpz_sgn(out) > 0 ? 0 : -1;
    }
    /* V3 inside the interval: sp = a, lq = b */
    if (mpz_cmp(L->a, L->target) == 0 || mpz_cmp(x, MAX_INT256) > 0)
        return -1;
    if (mpz_size(x) == 1) {                  /* floor(x*keep/1e6) in 128 bits: x, keep < 2^64 */
        put_u128(less, (u128)mpz_getlimbn(x, 0) * L->keep / 1000000u);
    } else {
        mpz_mul_ui(less, x, L->keep);
        floor_q_ui(less, less, 1000000);
    }
    if (mpz_cmp(less, L->raw) >= 0) {
        /* SwapMath.computeSwapStep reaching the edge: the step takes raw and its fee
         * (raw + mulDivRoundingUp(raw, fee, keep) must be the whole input, else None), and pays
         * getAmount1Delta(target, sp, lq, down) / getAmount0Delta(sp, target, lq, down) */
        unsigned long fee = 1000000 - L->keep;
        mpz_mul_ui(t0, L->raw, fee);
        ceil_q_ui(t0, t0, L->keep);           /* (its reverts: a q >= 2^256 - 1 is declined) */
        if (mpz_cmp(t0, MAX_UINT256) >= 0)
            return -1;
        mpz_add(t0, t0, L->raw);
        if (mpz_cmp(t0, x) != 0)
            return -1;
        int lower = mpz_cmp(L->target, L->a) < 0;
        mpz_srcptr lo = lower ? L->target : L->a, hi = lower ? L->a : L->target;
        mpz_sub(t1, hi, lo);
        if (L->zfo) {
            mpz_mul(t1, t1, L->b);
            mpz_fdiv_q_2exp(out, t1, 96);     /* mulDiv(lq, b - a, 2^96) */
        } else {
            if (mpz_sgn(lo) <= 0)
                return -1;
            mpz_mul_2exp(t0, L->b, 96);
            mpz_mul(t0, t0, t1);
            floor_q(t0, t0, hi);              /* mulDiv(lq << 96, b - a, b) */
            if (mpz_cmp(t0, MAX_UINT256) > 0)
                return -1;
            floor_q(out, t0, lo);
        }
        if (mpz_cmp(out, MAX_UINT256) > 0)
            return -1;
        return mpz_sgn(out) > 0 ? 0 : -1;
    }
    if (L->zfo) {
        mpz_mul(t1, less, L->a);
        mpz_add(t1, t1, L->n1);               /* d = n1 + less*sp, n1 = lq << 96 */
        if (mpz_cmp(t1, MAX_UINT256) > 0)
            return -1;
        ceil_q(sn, L->n1sp, t1);              /* sn = ceil(n1*sp / d) */
        if (mpz_cmp(sn, L->target) == 0)
            return -1;
        mpz_sub(t0, L->a, sn);
        mpz_mul(t0, t0, L->b);
        mpz_fdiv_q_2exp(out, t0, 96);         /* lq*(sp - sn) >> 96 */
        return mpz_sgn(out) > 0 ? 0 : -1;
    }
    if (mpz_cmp(less, MAX_UINT160) > 0)
        return -1;
    mpz_mul_2exp(t0, less, 96);
    floor_q(t0, t0, L->b);
    mpz_add(sn, L->a, t0);                    /* sn = sp + (less << 96) // lq */
    if (mpz_cmp(sn, L->target) == 0 || mpz_cmp(sn, MAX_UINT160) > 0)
        return -1;
    mpz_sub(t1, sn, L->a);
    mpz_mul(t0, L->n1, t1);
    mpz_mul(t2, sn, L->a);
    floor_q(out, t0, t2);                     /* (lq << 96)*(sn - sp) // sn // sp, = // (sn*sp): one division */
    return mpz_sgn(out) > 0 ? 0 : -1;
}

/* The round trip's exact profit at x: 0 with v = z - x and y, z the legs' outputs; -1: not priced here. */
static int profit(mpz_t v, mpz_t y, mpz_t z, const mpz_t x)
{
    if (quote(&LA, y, x) || quote(&LB, z, y))
        return -1;
    mpz_sub(v, z, x);
    return 0;
}

/* mpz_get_d_2exp, the same value (GMP's: z's top 53 bits truncated, as a double d with 0.5 <= |d| < 1, and
 * the exponent e, z ~ d * 2^e; 0.0 and e = 0 for z = 0) read off the top two limbs directly, without GMP's
 * general conversion: the estimates below take ~10 of these per sizing. get_d_2exp() (for the tests) is
 * this one. */
static inline double top_bits(long *e, const mpz_t z)
{
#if GMP_NUMB_BITS == 64 && GMP_NAIL_BITS == 0
    mp_size_t n = mpz_size(z);
    if (n == 0) {
        *e = 0;
        return 0.0;
    }
    const mp_limb_t *l = mpz_limbs_read(z);
    mp_limb_t hi = l[n - 1];
    int clz = __builtin_clzl(hi);
    mp_limb_t m = hi << clz;
    if (clz && n > 1)
        m |= l[n - 2] >> (64 - clz);
    *e = (long)n * 64 - clz;
    double d = (double)(m >> 11) * 0x1p-53;  /* (53 bits: exact) */
    return mpz_sgn(z) < 0 ? -d : d;
#else
    return mpz_get_d_2exp(e, z);
#endif
}

/* ---------------------------------------------------------------- RoundTrip */

/* level_interval's ends from float estimates, each checked exactly (R = isqrt(disc) + 1 is never taken):
 * first = floor((b - R)/(2r)) is the F with R <= b - F*2r and R > b - (F + 1)*2r, last = ceil((b + R)/(2r))
 * the G with R <= G*2r - b and R > (G - 1)*2r - b, and R <= m iff m >= 1 and disc < m^2, R > m iff m <= 0
 * or disc >= m^2: two squares of ~b's size per end instead of a square root of disc and two divisions.
 * The estimates (b - s)/(2r) = 2*level*p/(b + s) (no cancellation) and (b + s)/(2r), s ~ sqrt(disc), are
 * within 1 where they are below 2^50; an end is tried at its estimate and one either side. -1: not
 * told so (the square root's path), else level_interval's answer with first and last set. */
static long level_by_estimate, level_by_root;
static int fast_on;  /* (defined below, with the other switches) */

/* The float filter of the estimates below (span_by_estimate's roots, ends_by_estimate's ends), after
 * Shewchuk's adaptive predicates: an estimate u of a real value u* is made of each input's mpz_get_d_2exp
 * (truncated: relative error under e = 2^-53), one correctly rounded square root of one of them, and
 * (b + s), a quotient, a doubling and an ldexp (exact, the results being normal or below 2^-900): no
 * subtraction, so |u - u*| < 5e|u*| (0.5e + e from the root, e more for the sum, e each for the other
 * input and the quotient) < 2^-50|u|. Where u lies farther than 2^-48|u| + 2^-60 from every integer
 * (4x that, and 2^-60 for the callers' 1/r2 <= 2^-65), floor(u*) = floor(u) and u* is no integer: the
 * callers' ends are then read off u exactly, with no mpz test. Anything nearer is left to the exact tests. */
static long floored_by_float, level_by_float;
static int float_on = 1;

static int decided_by_float(double u, double f)   /* f = floor(u), 0 <= u < 2^50 */
{
    double tol = u * 0x1p-48 + 0x1p-60;
    return u - f > tol && (f + 1.0) - u > tol;
}

static mpz_t LI_M, LI_SQ, LI_LP;

static int root_at_most(const mpz_t disc, const mpz_t m)
{
    if (mpz_sgn(m) <= 0)
        return 0;
    mpz_mul(LI_SQ, m, m);
    return mpz_cmp(disc, LI_SQ) < 0;
}

static int root_above(const mpz_t disc, const mpz_t m)
{
    if (mpz_sgn(m) <= 0)
        return 1;
    mpz_mul(LI_SQ, m, m);
    return mpz_cmp(disc, LI_SQ) >= 0;
}

/* 1 if v is floor((b - R)/r2) (the lower end) or ceil((b + R)/r2) (upper), R = isqrt(disc) + 1 */
static int is_end(const mpz_t b, const mpz_t disc, const mpz_t r2, long v, int upper)
{
    mpz_mul_si(LI_M, r2, v);
    if (upper) {                              /* R <= v*r2 - b and R > (v - 1)*r2 - b */
        mpz_sub(LI_M, LI_M, b);
        if (!root_at_most(disc, LI_M))
            return 0;
        mpz_sub(LI_M, LI_M, r2);
        return root_above(disc, LI_M);
    }
    mpz_sub(LI_M, b, LI_M);                   /* R <= b - v*r2 and R > b - (v + 1)*r2 */
    if (!root_at_most(disc, LI_M))
        return 0;
    mpz_sub(LI_M, LI_M, r2);
    return root_above(disc, LI_M);
}

/* the end (upper or not) at est, est - 1 or est + 1, tried in that order, into out: 1, else 0 */
static int end_near(mpz_t out, const mpz_t b, const mpz_t disc, const mpz_t r2, long est, int upper)
{
    static const long tries[3] = {0, -1, 1};
    for (int i = 0; i < 3; i++)
        if (is_end(b, disc, r2, est + tries[i], upper)) {
            mpz_set_si(out, est + tries[i]);
            return 1;
        }
    return 0;
}

static int ends_by_estimate(mpz_t first, mpz_t last, const mpz_t b, const mpz_t disc, const mpz_t r, const mpz_t r2,
                            const mpz_t level, const mpz_t p, const mpz_t lo, const mpz_t hi)
{
    long be, de, re, le;
    mpz_mul(LI_LP, level, p);
    double bm = top_bits(&be, b), dm = top_bits(&de, disc), rm = top_bits(&re, r), lm = top_bits(&le, LI_LP);
    if (!(bm > 0 && rm > 0 && lm > 0) || de - 2 * be < -2000 || be - re > 1000 || re - be > 1000 || le - be > 1000 ||
        be - le > 1000)
        return -1;
    double sum = bm + sqrt(ldexp(dm, (int)(de - 2 * be)));  /* (b + s) / 2^be */
    double f = ldexp(2.0 * lm / sum, (int)(le - be)), g = ldexp(sum / (2.0 * rm), (int)(be - re));
    if (!(f >= 0 && f <= g && g < 0x1p50))
        return -1;
    long fe = (long)floor(f), ge = (long)ceil(g);
    if (float_on && mpz_sizeinbase(r2, 2) > 65 && decided_by_float(f, floor(f)) && decided_by_float(g, floor(g))) {
        /* (b - R)/r2 lies in [f* - 1/r2, f*) and (b + R)/r2 in (g*, g* + 1/r2], R in (s, s + 1], f* and g*
         * the real roots (b -+ s)/r2: where the filter decides f and g (1/r2 < 2^-65 below the distance
         * it leaves), floor((b - R)/r2) = floor(f) and ceil((b + R)/r2) = ceil(g) */
        level_by_float++;
        mpz_set_si(first, fe);
        mpz_set_si(last, ge);
    } else if (!end_near(first, b, disc, r2, fe, 0) || !end_near(last, b, disc, r2, ge, 1)) {
        return -1;
    }
    if (mpz_cmp(first, lo) < 0)
        mpz_set(first, lo);
    if (mpz_cmp(last, hi) > 0)
        mpz_set(last, hi);
    return mpz_cmp(first, last) <= 0;
}

/* level_interval(level, lo, hi) of (n, p, r): 1 with [first, last], 0 for None. */
static int level_interval(mpz_t first, mpz_t last, const mpz_t n, const mpz_t p, const mpz_t r,
                          const mpz_t level, const mpz_t lo, const mpz_t hi)
{
    mpz_ptr b = T[30], disc = T[31], t = T[32], r2 = T[33];
    mpz_sub(b, n, p);
    mpz_mul(t, r, level);
    mpz_sub(b, b, t);                         /* b = n - p - r*level */
    mpz_mul(disc, b, b);
    mpz_mul(t, t, p);
    mpz_mul_2exp(t, t, 2);
    mpz_sub(disc, disc, t);                   /* b*b - 4*r*level*p */
    if (mpz_sgn(b) <= 0 || mpz_sgn(disc) < 0)
        return 0;
    mpz_mul_2exp(r2, r, 1);
    if (fast_on) {
        int got = ends_by_estimate(first, last, b, disc, r, r2, level, p, lo, hi);
        if (got >= 0) {
            level_by_estimate++;
            return got;
        }
    }
    level_by_root++;
    mpz_sqrt(disc, disc);
    mpz_add_ui(disc, disc, 1);                /* root = isqrt(disc) + 1 */
    mpz_sub(t, b, disc);
    floor_q(first, t, r2);
    if (mpz_cmp(first, lo) < 0)
        mpz_set(first, lo);
    mpz_add(t, b, disc);
    ceil_q(last, t, r2);
    if (mpz_cmp(last, hi) > 0)
        mpz_set(last, hi);
    return mpz_cmp(first, last) <= 0;
}

/* (a*u - b)*u + k > 0: a size u outside the quadratic's interval (t: scratch) */
static int above(mpz_t t, const mpz_t a, const mpz_t b, const mpz_t u, const mpz_t k)
{
    mpz_mul(t, a, u);
    mpz_sub(t, t, b);
    mpz_mul(t, t, u);
    mpz_add(t, t, k);
    return mpz_sgn(t) > 0;
}

/* level_interval_exact: level_interval with each end checked by (r*x - b)*x + level*p <= 0. */
static int level_interval_exact(mpz_t first, mpz_t last, const mpz_t n, const mpz_t p, const mpz_t r,
                                const mpz_t level, const mpz_t lo, const mpz_t hi)
{
    if (!level_interval(first, last, n, p, r, level, lo, hi))
        return 0;
    mpz_ptr b = T[34], lp = T[35], t = T[36];
    mpz_mul(lp, level, p);
    mpz_sub(b, n, p);
    mpz_submul(b, r, level);
    while (mpz_cmp(first, last) <= 0 && above(t, r, b, first, lp))
        mpz_add_ui(first, first, 1);
    while (mpz_cmp(last, first) >= 0 && above(t, r, b, last, lp))
        mpz_sub_ui(last, last, 1);
    return mpz_cmp(first, last) <= 0;
}

/* floored()'s span of one c from the roots' float estimates, checked exactly: the sizes x of [start, end]
 * with (a2*u - b)*u + kc <= 0, u = x - c (b > 0, disc = b^2 - 4*a2*kc >= 0: an interval). The roots are
 * estimated as u2 = (b + sqrt(disc))/(2*a2) and u1 = 2*kc/(b + sqrt(disc)) (no cancellation), each within
 * ~10 roundings of 2^-53, so within 2 where u2 < 2^50; each end is then moved to where the exact test holds
 * at it and fails (or the range ends) just beyond it, instead of the exact ~1,000-bit square root and two
 * divisions. 1: the span is [first, last]; 0: no size of [start, end] is in it; -1: not told here (the
 * exact square root's path decides). */
static long floored_by_estimate, floored_by_root;
static mpz_t SP_U, SP_T, SP_X;

static int in_span(const mpz_t a2, const mpz_t b, const mpz_t kc, const mpz_t c, const mpz_t x)
{
    mpz_sub(SP_U, x, c);
    return !above(SP_T, a2, b, SP_U, kc);
}

static int span_by_estimate(mpz_t first, mpz_t last, const mpz_t a2, double am, long ae, const mpz_t b,
                            const mpz_t disc, const mpz_t kc, const mpz_t c, const mpz_t start, const mpz_t end)
{
    long be, de, ke;  /* (am, ae: a2's top_bits, the same for every c of the caller's) */
    double bm = top_bits(&be, b), dm = top_bits(&de, disc), km = top_bits(&ke, kc);
    if (!(bm > 0 && am > 0) || de - 2 * be < -2000 || ae - be > 1000 || be - ae > 1000 || ke - be > 1000 ||
        be - ke > 1000)
        return -1;
    double sq = sqrt(ldexp(dm, (int)(de - 2 * be))), sum = bm + sq;  /* (b + sqrt(disc)) / 2^be */
    double u2 = ldexp(sum / (2.0 * am), (int)(be - ae)), u1 = ldexp(2.0 * km / sum, (int)(ke - be));
    if (!(u1 >= 0 && u1 <= u2 && u2 < 0x1p50))
        return -1;
    if (float_on) {
        /* the float filter: the integer u of the span are ceil(u1*) .. floor(u2*), the real roots; where
         * each estimate lies farther from an integer than its error can reach, that is floor(u1) + 1 ..
         * floor(u2), with no exact test at all */
        double f1 = floor(u1), f2 = floor(u2);
        if (decided_by_float(u1, f1) && decided_by_float(u2, f2)) {
            floored_by_float++;
            if (mpz_sizeinbase(c, 2) <= 60) {     /* (c + u < 2^61: unsigned longs) */
                unsigned long cu = mpz_get_ui(c);
                mpz_set_ui(first, cu + (unsigned long)f1 + 1);
                mpz_set_ui(last, cu + (unsigned long)f2);
            } else {
                mpz_set_d(first, f1 + 1.0);
                mpz_add(first, first, c);
                mpz_set_d(last, f2);
                mpz_add(last, last, c);
            }
            if (mpz_cmp(first, start) < 0)
                mpz_set(first, start);
            if (mpz_cmp(last, end) > 0)
                mpz_set(last, end);
            return mpz_cmp(first, last) <= 0;
        }
    }
    /* the real roots lie within [u1 - 2, u2 + 2] and [u1 + 2, u2 - 2] holds none of the outside */
    mpz_set_d(first, floor(u1) - 2.0 < 0 ? 0.0 : floor(u1) - 2.0);
    mpz_add(first, first, c);                 /* below the span, or at its first size */
    mpz_set_d(last, floor(u2) + 3.0);
    mpz_add(last, last, c);                   /* above the span */
    if (mpz_cmp(last, start) < 0 || mpz_cmp(first, end) > 0)
        return 0;                             /* every size of [start, end] lies beyond a root */
    /* first: the least size of [start, end] in the span, from below it (at most ~5 sizes up) */
    if (mpz_cmp(first, start) < 0)
        mpz_set(first, start);
    int steps = 0;
    while (!in_span(a2, b, kc, c, first)) {
        if (mpz_cmp(first, end) >= 0 || ++steps > 8)
            return steps > 8 ? -1 : 0;        /* (end reached: the span misses [start, end]) */
        mpz_add_ui(first, first, 1);
    }
    if (mpz_cmp(first, start) > 0) {          /* it must not be in the span just below: a size outside */
        mpz_sub_ui(SP_X, first, 1);
        if (in_span(a2, b, kc, c, SP_X))
            return -1;
    }
    /* last: the greatest, from above it */
    if (mpz_cmp(last, end) > 0)
        mpz_set(last, end);
    steps = 0;
    while (!in_span(a2, b, kc, c, last)) {
        if (++steps > 8)
            return -1;
        mpz_sub_ui(last, last, 1);            /* (first is in the span: last stops at it at the latest) */
    }
    if (mpz_cmp(last, end) < 0) {
        mpz_add_ui(SP_X, last, 1);
        if (in_span(a2, b, kc, c, SP_X))
            return -1;
    }
    return 1;
}

#define MAX_SPANS 16
static mpz_t SPAN_LO[MAX_SPANS], SPAN_HI[MAX_SPANS];

/* floored_level_intervals(level, lo, hi, keep, keep_den) of (n, p, r), fee = keep_den - keep > 0: the
 * number of spans written to SPAN_LO/SPAN_HI, -1 if more than MAX_SPANS (not this path). */
static int floored(const mpz_t n, const mpz_t p, const mpz_t r, const mpz_t level, const mpz_t lo,
                   const mpz_t hi, unsigned long k, unsigned long big_d)
{
    mpz_ptr a2 = T[10], pk = T[11], a4 = T[12], base = T[13], pk4 = T[14], c = T[15], start = T[16],
            end = T[17], lc = T[18], b = T[19], disc = T[20], first = T[21], last = T[22], kc = T[23],
            u = T[24], t = T[25];
    unsigned long fee = big_d - k;
    int count = 0;
    mpz_mul_ui(a2, r, big_d);
    mpz_mul_ui(pk, p, k);
    mpz_mul_2exp(a4, a2, 1);
    mpz_mul_ui(base, n, big_d);
    mpz_sub(base, base, pk);
    mpz_mul(pk4, a2, pk);
    mpz_mul_2exp(pk4, pk4, 2);
    mpz_mul_ui(c, lo, fee);
    ceil_q_ui(c, c, big_d);                   /* c = ceil(lo*fee / D) */
    long ae;
    double am = top_bits(&ae, a2);
    mpz_add(lc, level, c);                    /* lc = level + c, b = base - a2*lc, kc = lc*pk: kept as c steps */
    mpz_set(b, base);
    mpz_submul(b, a2, lc);
    mpz_mul(kc, lc, pk);
    /* sizes below 2^40 and D below 2^20: c, start and end as unsigned longs (c*D < 2^61), the same values */
    int narrow = mpz_sizeinbase(hi, 2) <= 40 && big_d < (1UL << 20);
    unsigned long cu = narrow ? mpz_get_ui(c) : 0, lou = narrow ? mpz_get_ui(lo) : 0, hiu = narrow ? mpz_get_ui(hi) : 0;
    for (;;) {
        if (narrow) {
            unsigned long su = (cu - 1) * big_d / fee + 1, eu = cu * big_d / fee;  /* (c >= 1: lo and fee are) */
            if (su < lou)
                su = lou;
            if (su > hiu)
                break;
            mpz_set_ui(start, su);
            mpz_set_ui(end, eu > hiu ? hiu : eu);
            cu++;
        } else {
            mpz_sub_ui(start, c, 1);
            mpz_mul_ui(start, start, big_d);
            floor_q_ui(start, start, fee);
            mpz_add_ui(start, start, 1);      /* (c - 1)*D // fee + 1 */
            if (mpz_cmp(start, lo) < 0)
                mpz_set(start, lo);
            if (mpz_cmp(start, hi) > 0)
                break;
            mpz_mul_ui(end, c, big_d);
            floor_q_ui(end, end, fee);
            if (mpz_cmp(end, hi) > 0)
                mpz_set(end, hi);
        }
        if (mpz_cmp(start, end) <= 0) {
            if (mpz_sgn(b) > 0) {
                mpz_mul(disc, b, b);
                mpz_submul(disc, pk4, lc);
                if (mpz_sgn(disc) >= 0) {
                    int got = fast_on ? span_by_estimate(first, last, a2, am, ae, b, disc, kc, c, start, end) : -1;
                    if (got >= 0) {
                        floored_by_estimate++;
                        if (got == 0)
                            mpz_add_ui(first, last, 1);  /* (no span: first > last) */
                    } else {
                        floored_by_root++;
                        mpz_sqrt(disc, disc);
                        mpz_add_ui(disc, disc, 1);
                        mpz_sub(t, b, disc);
                        floor_q(first, t, a4);
                        mpz_add(first, first, c);
                        mpz_add(t, b, disc);
                        ceil_q(last, t, a4);
                        mpz_add(last, last, c);
                        if (mpz_cmp(first, start) < 0)
                            mpz_set(first, start);
                        if (mpz_cmp(last, end) > 0)
                            mpz_set(last, end);
                        mpz_sub(u, first, c);
                        while (mpz_cmp(first, last) <= 0 && above(t, a2, b, u, kc)) {
                            mpz_add_ui(first, first, 1);
                            mpz_add_ui(u, u, 1);
                        }
                        mpz_sub(u, last, c);
                        while (mpz_cmp(last, first) >= 0 && above(t, a2, b, u, kc)) {
                            mpz_sub_ui(last, last, 1);
                            mpz_sub_ui(u, u, 1);
                        }
                    }
                    if (mpz_cmp(first, last) <= 0) {
                        if (count == MAX_SPANS)
                            return -1;
                        mpz_set(SPAN_LO[count], first);
                        mpz_set(SPAN_HI[count], last);
                        count++;
                    }
                }
            }
        }
        mpz_add_ui(c, c, 1);
        mpz_add_ui(lc, lc, 1);
        mpz_sub(b, b, a2);
        mpz_add(kc, kc, pk);
    }
    return count;
}

/* ---------------------------------------------------------------- the sizing */

#define FINISH_SCAN 256
#define TOP_DOWN_LEVELS 512
#define RELAXED_BITS 192

static long answered, unproven;  /* how often closed_form answered with a size, and unproven (counts()) */

static PyObject *answer_as(const mpz_t x, const mpz_t v, const mpz_t y, const mpz_t z, int proven)
{
    answered++;
    unproven += !proven;
    PyObject *px = to_py(x), *pv = to_py(v), *py = to_py(y), *pz = to_py(z);
    PyObject *out = NULL;
    if (px && pv && py && pz)
        out = PyTuple_Pack(5, px, pv, proven ? Py_True : Py_False, py, pz);
    Py_XDECREF(px);
    Py_XDECREF(pv);
    Py_XDECREF(py);
    Py_XDECREF(pz);
    return out;
}

#define answer(x, v, y, z) answer_as(x, v, y, z, 1)

/* ---------------------------------------------------------------- the pattern search */

#define PATTERN_BITS 8
#define MEMO 512
static mpz_t MEMO_X[MEMO], MEMO_V[MEMO], MEMO_Y[MEMO], MEMO_Z[MEMO];
static int memo_n;

/* where each memoized size is: open addressing on its lowest limb, a slot being current only when it
 * holds this sizing's generation (no clearing per call); the pattern search asks ~40 sizes, of them ~20
 * new, and a scan of the memo for each cost more than the quotes it saved */
#define MEMO_SLOTS 2048                      /* a power of two, > 2*MEMO */
static unsigned slot_gen[MEMO_SLOTS], memo_gen;
static int slot_index[MEMO_SLOTS];

static unsigned slot_of(const mpz_t x)
{
    mp_limb_t k = mpz_size(x) ? mpz_getlimbn(x, 0) : 0;
    return (unsigned)((k * 0x9E3779B97F4A7C15ULL) >> 40) & (MEMO_SLOTS - 1);
}

/* a new sizing's memo holding x (its profit v, legs y, z) alone */
static void memo_start(const mpz_t x, const mpz_t v, const mpz_t y, const mpz_t z)
{
    if (++memo_gen == 0) {                    /* (wrapped: every slot is stale again) */
        for (int i = 0; i < MEMO_SLOTS; i++)
            slot_gen[i] = 0;
        memo_gen = 1;
    }
    mpz_set(MEMO_X[0], x);
    mpz_set(MEMO_V[0], v);
    mpz_set(MEMO_Y[0], y);
    mpz_set(MEMO_Z[0], z);
    unsigned h = slot_of(x);
    slot_gen[h] = memo_gen;
    slot_index[h] = 0;
    memo_n = 1;
}

/* profit(x) kept (memoized, as the Python's): the index of x's entry, -1: not priced here */
static int priced(const mpz_t x)
{
    unsigned h = slot_of(x);
    for (; slot_gen[h] == memo_gen; h = (h + 1) & (MEMO_SLOTS - 1))
        if (mpz_cmp(MEMO_X[slot_index[h]], x) == 0)
            return slot_index[h];
    if (memo_n == MEMO)
        return -1;
    int i = memo_n;
    if (profit(MEMO_V[i], MEMO_Y[i], MEMO_Z[i], x))
        return -1;
    mpz_set(MEMO_X[i], x);
    memo_n++;
    slot_gen[h] = memo_gen;
    slot_index[h] = i;
    return i;
}

/* ---------------------------------------------------------------- the pattern search's float screen */

/* Most sizes the pattern search prices improve nothing (on the benchmark: ~36 of ~40, each two exact
 * quotes of ~1,200 instructions); a float upper bound of the round trip's output refutes them in ~100.
 * bound(L, X, is_int): an upper bound of quote(L, x) for every integer x <= X where quote prices x by its
 * in-range forms (not at the edge, no overflow: the conditions are checked on the bound's side), or -1
 * where it cannot tell (then the exact quote decides). Every quantity is positive and each operation's
 * rounding is within 2^-53 relatively, the conversions (truncating: each double <= its int) within 2^-52:
 * some ten of them, all covered by a factor (1 + 2^-40). The outputs the floors make integers are floored
 * below 2^53, where a double holds every integer (above it the bound is looser, still a bound).
 * is_int: X is an integer below 2^53 (then a V3 leg's floor(x*keep/1e6) is computed exactly). */
#define SCREEN_UP (1.0 + 0x1p-40)
#define SCREEN_DOWN (1.0 - 0x1p-40)
#define TWO53 0x1p53
#define Q96D 0x1p96
static long screened, screen_priced;  /* pattern-search sizes the bound refuted / left to the exact quotes */
static int screen_on = 1;

static void leg_doubles(leg_t *L)
{
    L->da = mpz_get_d(L->a);
    L->db = mpz_get_d(L->b);
    if (L->kind == 1) {
        L->dtarget = mpz_get_d(L->target);
        L->draw = mpz_get_d(L->raw);
        L->at_edge = mpz_cmp(L->a, L->target) == 0;
    }
}

static double floored_below_2_53(double q)
{
    return q < TWO53 ? floor(q) : q;
}

static double bound(const leg_t *L, double X, int is_int)
{
    double q;
    if (!(X >= 1.0))
        return -1.0;
    if (L->kind == 0) {                       /* x*k*ro / (ri*1e4 + x*k): no floor inside */
        double w = X * (double)L->keep;
        q = w * L->db / (L->da * 10000.0 + w) * SCREEN_UP;
    } else {
        double less;
        if (is_int) {                         /* floor(x*keep/1e6), exactly */
            unsigned __int128 t = (unsigned __int128)(unsigned long long)X * L->keep;
            less = (double)(unsigned long long)(t / 1000000u);
        } else {
            less = floored_below_2_53(X * (double)L->keep / 1e6 * SCREEN_UP);
        }
        /* the exact quote's in-range forms: x <= MAX_INT256, less < raw (not the edge), sp != target */
        if (!(X < 0x1p254) || !(less >= 1.0) || !(less < L->draw) || L->at_edge)
            return -1.0;
        double sp = L->da, lq = L->db;
        if (L->zfo) {
            /* d = (lq << 96) + less*sp <= MAX_UINT256; sn = ceil((lq << 96)*sp / d) > target;
             * out = lq*(sp - sn) >> 96 <= lq*less*sp^2 / (d * 2^96) (sp - sn <= sp - n1*sp/d = less*sp^2/d) */
            double d = lq * Q96D + less * sp;
            if (!(d * SCREEN_UP < 0x1p255) || !(lq * Q96D * sp / (d * SCREEN_UP) * SCREEN_DOWN > L->dtarget * SCREEN_UP))
                return -1.0;
            q = lq * floored_below_2_53(less * sp * sp / d * SCREEN_UP) / Q96D * SCREEN_UP;  /* (sp - sn: an int) */
        } else {
            /* less <= MAX_UINT160; sn = sp + (less << 96) // lq < target (<= MAX_UINT160);
             * out = (lq << 96)*(sn - sp) // sn // sp <= lq*2^96*dl / ((sp + dl)*sp), dl = less*2^96/lq
             * (increasing in dl: its bound bounds it) */
            if (!(less < 0x1p159))
                return -1.0;
            double dl = floored_below_2_53(less * Q96D / lq * SCREEN_UP);  /* (sn - sp: an int) */
            if (!((sp + dl) * SCREEN_UP < L->dtarget))
                return -1.0;
            q = lq * Q96D * dl / ((sp + dl) * sp) * SCREEN_UP;
        }
    }
    if (!(q < INFINITY))
        return -1.0;
    return floored_below_2_53(q);
}

/* 1 if the round trip's exact profit at x is provably at most p (> 0): the bound of leg b's output for
 * the bound of leg a's is at most x + p. 0: the exact quotes decide. The sizes and profit as doubles:
 * dx within 2^-52 of x (exactly x where small, x < 2^52), dp at most p (exactly p where p_small, p < 2^51). */
static int refuted_d(double dx, int small, double dp, int p_small)
{
    double y = bound(&LA, small ? dx : dx * SCREEN_UP, small);
    if (y < 0)
        return 0;
    double z = bound(&LB, y, y < TWO53);      /* (y is then an integer: bound floors it) */
    if (z < 0)
        return 0;
    if (small && p_small && z < TWO53)
        return z <= dx + dp;                  /* all integers below 2^53: exact */
    return z < (dx + dp) * SCREEN_DOWN;       /* (x, p within 2^-52: their sum is at most x + p, up to its rounding) */
}

static int refuted(const mpz_t x, const mpz_t p)
{
    if (!screen_on || mpz_sgn(x) <= 0 || mpz_sgn(p) <= 0)
        return 0;
    return refuted_d(mpz_get_d(x), mpz_sizeinbase(x, 2) <= 52, mpz_get_d(p), mpz_sizeinbase(p, 2) <= 51);
}

/* the index of x's memo entry, -1 if it has none */
static int memo_find(const mpz_t x)
{
    for (unsigned h = slot_of(x); slot_gen[h] == memo_gen; h = (h + 1) & (MEMO_SLOTS - 1))
        if (mpz_cmp(MEMO_X[slot_index[h]], x) == 0)
            return slot_index[h];
    return -1;
}

/* _pattern(at, lo, hi, x, p): moves of +-2^j (j from min(PATTERN_BITS, bits(hi - lo)) down to 0) taken
 * while they improve, each round's pair (x - d, x + d) from the x the round's step began at; the
 * index of the answer's memo entry, -1: not priced here. */
static int pattern_wide(const mpz_t lo, const mpz_t hi, int at, long top);

static int memo_find_u128(u128 x)           /* memo_find of a size below 2^128 */
{
    mp_limb_t k = (mp_limb_t)x, k1 = (mp_limb_t)(x >> 64);
    size_t want = k1 ? 2 : (k ? 1 : 0);
    unsigned h = (unsigned)((k * 0x9E3779B97F4A7C15ULL) >> 40) & (MEMO_SLOTS - 1);
    for (; slot_gen[h] == memo_gen; h = (h + 1) & (MEMO_SLOTS - 1)) {
        mpz_srcptr m = MEMO_X[slot_index[h]];
        if (mpz_sgn(m) >= 0 && mpz_size(m) == want && (want < 1 || mpz_getlimbn(m, 0) == k) &&
            (want < 2 || mpz_getlimbn(m, 1) == k1))
            return slot_index[h];
    }
    return -1;
}

/* the 128-bit pattern search, the two-point width test (inside_exactly) and the estimated ends of floored spans
 * and level intervals on or off (the same answers: fast(), for the tests), and how often each way ran
 * (path_counts()) */
static int fast_on = 1;
static long pattern_narrow, pattern_mpz, width_by_points, width_by_root;

static int pattern(const mpz_t lo, const mpz_t hi, int at)
{
    mpz_ptr w = T[10];
    mpz_sub(w, hi, lo);
    long top = (long)(mpz_sgn(w) > 0 ? mpz_sizeinbase(w, 2) : 0);
    if (top > PATTERN_BITS)
        top = PATTERN_BITS;
    leg_doubles(&LA);
    leg_doubles(&LB);
    if (!fast_on || mpz_sgn(lo) <= 0 || mpz_sizeinbase(hi, 2) > 126) {
        pattern_mpz++;
        return pattern_wide(lo, hi, at, top);
    }
    pattern_narrow++;
    /* every size of [lo, hi] below 2^126: the sizes as 128-bit integers, the current best's doubles kept
     * while it is the best (the same moves, memo and answers as pattern_wide, which is the reference) */
    u128 ulo = to_u128(lo), uhi = to_u128(hi), x = to_u128(MEMO_X[at]);
    mpz_ptr cand = T[11];
    double dp = 0.0;
    int p_ok = 0, p_small = 0;
#define AT_CHANGED() do { \
        x = to_u128(MEMO_X[at]); \
        p_ok = mpz_sgn(MEMO_V[at]) > 0; \
        dp = mpz_get_d(MEMO_V[at]); \
        p_small = mpz_sizeinbase(MEMO_V[at], 2) <= 51; \
    } while (0)
    AT_CHANGED();
    int moved = 1;
    while (moved) {
        moved = 0;
        for (long j = top; j >= 0; j--) {
            u128 d = (u128)1 << j;
            u128 both[2] = {x - d, x + d};
            int under = x < d;            /* (x - d below zero: outside [lo, hi], lo being >= 1) */
            for (int k = 0; k < 2; k++) {
                u128 n = both[k];
                if ((k == 0 && under) || n < ulo || n > uhi)
                    continue;
                int i = memo_find_u128(n);
                if (i < 0) {
                    if (screen_on && p_ok &&
                        refuted_d((double)n, n < ((u128)1 << 52), dp, p_small)) {  /* (at most the one to beat) */
                        screened++;
                        continue;
                    }
                    screen_priced += screen_on;
                    put_u128(cand, n);
                    i = priced(cand);
                }
                if (i < 0)
                    return -1;
                if (mpz_cmp(MEMO_V[i], MEMO_V[at]) > 0) {
                    at = i;
                    moved = 1;
                    AT_CHANGED();         /* (this round's other move is still from the x it began at: both[]) */
                }
            }
            x = to_u128(MEMO_X[at]);
        }
    }
#undef AT_CHANGED
    return at;
}

/* pattern() on sizes of any width (mpz throughout) */
static int pattern_wide(const mpz_t lo, const mpz_t hi, int at, long top)
{
    mpz_ptr n1 = T[11], n2 = T[12], d = T[13];
    int moved = 1;
    while (moved) {
        moved = 0;
        for (long j = top; j >= 0; j--) {
            mpz_set_ui(d, 1);
            mpz_mul_2exp(d, d, (mp_bitcnt_t)j);
            mpz_sub(n1, MEMO_X[at], d);
            mpz_add(n2, MEMO_X[at], d);
            mpz_ptr both[2] = {n1, n2};
            for (int k = 0; k < 2; k++) {
                if (mpz_cmp(lo, both[k]) > 0 || mpz_cmp(both[k], hi) > 0)
                    continue;
                int i = memo_find(both[k]);
                if (i < 0) {
                    if (refuted(both[k], MEMO_V[at])) {  /* (its profit is at most the one to beat) */
                        screened++;
                        continue;
                    }
                    screen_priced += screen_on;
                    i = priced(both[k]);
                }
                if (i < 0)
                    return -1;
                if (mpz_cmp(MEMO_V[i], MEMO_V[at]) > 0) {
                    at = i;
                    moved = 1;
                }
            }
        }
    }
    return at;
}

/* PoolVenue.least_input(token in, y): 0 with x set (NEVER = 2^256 where no input reaches y), 1 for its
 * None (no closed form: the contract's overflow fallback) */
static int least_input(const leg_t *L, mpz_t x, const mpz_t y)
{
    mpz_ptr t0 = T[40], t1 = T[41], t2 = T[42], target = T[43], m = T[44];
    if (mpz_sgn(y) <= 0) {
        mpz_set_ui(x, 1);
        return 0;
    }
    if (L->kind == 0) {  /* max(1, ceil(y*ri*1e4 / (k*(ro - y)))) */
        if (mpz_cmp(y, L->b) >= 0) {
            mpz_set(x, NEVER);
            return 0;
        }
        mpz_mul(t0, y, L->a);
        mpz_mul_ui(t0, t0, 10000);
        mpz_sub(t1, L->b, y);
        mpz_mul_ui(t1, t1, L->keep);
        ceil_q(x, t0, t1);
    } else if (L->zfo) {
        mpz_mul_2exp(t0, y, 96);
        ceil_q(t0, t0, L->b);
        mpz_sub(target, L->a, t0);            /* sp - ceil(y*2^96/lq) */
        if (mpz_sgn(target) <= 0) {
            mpz_set(x, NEVER);
            return 0;
        }
        mpz_mul_2exp(t2, L->b, 96);           /* n1 */
        mpz_sub(t0, L->a, target);
        mpz_mul(t0, t0, t2);
        mpz_mul(t1, target, L->a);
        ceil_q(m, t0, t1);
        mpz_mul_ui(m, m, 1000000);
        ceil_q_ui(x, m, L->keep);
        mpz_mul(t0, x, L->a);
        if (mpz_cmp(t0, MAX_UINT256) > 0)
            return 1;
        mpz_add(t0, t0, t2);
        if (mpz_cmp(t0, MAX_UINT256) > 0)
            return 1;
    } else {
        mpz_mul_2exp(t2, L->b, 96);           /* n1 */
        mpz_mul(t0, y, L->a);
        if (mpz_cmp(t2, t0) <= 0) {
            mpz_set(x, NEVER);
            return 0;
        }
        mpz_sub(t1, t2, t0);
        mpz_mul(t0, t2, L->a);
        ceil_q(target, t0, t1);               /* ceil(n1*sp / (n1 - y*sp)) */
        mpz_sub(t0, target, L->a);
        mpz_mul(t0, t0, L->b);
        mpz_cdiv_q_2exp(m, t0, 96);
        mpz_mul_ui(m, m, 1000000);
        ceil_q_ui(x, m, L->keep);
    }
    if (mpz_cmp_ui(x, 1) < 0)
        mpz_set_ui(x, 1);
    return 0;
}

/* _sized's nxt(x), x priced with the round trip's output z: the least size above x that can return
 * more (the legs' exact inverses), else x + 1; in place. -1: not this path. */
static mpz_t NX_Z1, NX_Y2, NX_X2;

static int next_size(mpz_t x, const mpz_t z)
{
    mpz_add_ui(NX_Z1, z, 1);
    if (least_input(&LB, NX_Y2, NX_Z1) == 0 && least_input(&LA, NX_X2, NX_Y2) == 0 && mpz_cmp(NX_X2, x) > 0)
        mpz_set(x, NX_X2);
    else
        mpz_add_ui(x, x, 1);
    return 0;
}

static long declined[16];  /* per site: how often this path declined (declines(), for the tests) */
#define DECLINE() do { declined[0]++; Py_RETURN_FALSE; } while (0)

static mpz_t root, u, d, pc, yc, zc, v, y, z, lo, hi, level, first, last, xs;  /* (made once: no allocation per call) */

/* A leg's Curve (PoolVenue.curve): ri/den and ro/den its reserves in and out, keep/keep_den its fee; 1
 * if its first leg's fee floor makes the period > 1 (a V3 pool with a fee). */
static int curve_of(const leg_t *L, mpz_t ri, mpz_t ro, mpz_t den, unsigned long *k, unsigned long *big_k)
{
    *k = L->keep;
    if (L->kind == 0) {                       /* Curve(reserve in, reserve out, 1, keep, 10000, ...) */
        mpz_set(ri, L->a);
        mpz_set(ro, L->b);
        mpz_set_ui(den, 1);
        *big_k = 10000;
        return 0;
    }
    /* V3: x_v = L*2^96/sp in, y_v = L*sp/2^96 out over sp*2^96 (token0 in), the other way for token1 */
    mpz_ptr l192 = L->zfo ? ri : ro, lsp2 = L->zfo ? ro : ri;
    mpz_mul_2exp(l192, L->b, 192);
    mpz_mul(lsp2, L->b, L->a);
    mpz_mul(lsp2, lsp2, L->a);
    mpz_mul_2exp(den, L->a, 96);
    *big_k = 1000000;
    return L->keep < 1000000;
}

/* 1 if first + w/4 and last - w/4 (w = last - first) both lie in the exact trip's (n, p, r) set of
 * sizes whose continuous profit reaches level: (r*x - b)*x + level*p <= 0, b = n - p - r*level (a
 * quadratic's interval: so does every size between them). Three products of the ~1,150-bit
 * coefficients by ~60-bit integers instead of level_interval's square root. */
static int inside_exactly(const mpz_t first, const mpz_t last, const mpz_t n, const mpz_t p, const mpz_t r,
                          const mpz_t level)
{
    mpz_ptr b = T[34], lp = T[35], t = T[36], x = xs;
    mpz_sub(b, n, p);
    mpz_submul(b, r, level);
    mpz_mul(lp, level, p);
    mpz_sub(x, last, first);
    mpz_fdiv_q_2exp(x, x, 2);
    for (int k = 0; k < 2; k++) {
        if (k == 0)
            mpz_add(x, first, x);
        else {
            mpz_sub(x, x, first);         /* (back to w/4) */
            mpz_sub(x, last, x);
        }
        if (above(t, r, b, x, lp))
            return 0;
    }
    return 1;
}

static PyObject *closed_form(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "closed_form takes 5 arguments");
        return NULL;
    }
    PyObject *la = args[0], *lb = args[1], *pmax_a = args[2], *pmax_b = args[3], *pneed = args[4];
    mpz_ptr ri_a = LA.ri, ro_a = LA.ro, den_a = LA.den, max_a = T[3], ri_b = LB.ri, ro_b = LB.ro, den_b = LB.den,
            max_b = T[7], need = T[8], t = T[9];  /* (the legs' curves: read-only here) */
    unsigned long ka, KA, kb, KB, period_a;
    if (read_leg_kept(&LA, &LA_SRC, la) || read_leg_kept(&LB, &LB_SRC, lb) || from_py(max_a, pmax_a) ||
        from_py(max_b, pmax_b) ||
        from_py(need, pneed)) {
        PyErr_Clear();
        DECLINE();
    }
    period_a = (unsigned long)LA.c_period + 1;  /* (only "> 1" is asked) */
    ka = LA.ck, KA = LA.c_big_k, kb = LB.ck, KB = LB.c_big_k;
    mpz_ptr n = T[26], p = T[27], r = T[28], x_max = T[29], nl = T[37], pl = T[38], rl = T[39],
            top = T[45], c = T[46], np_ = T[47];
    PyObject *result = NULL;
#define OUT(expr) do { result = (expr); goto done; } while (0)
#define DECL(site) do { declined[site]++; Py_INCREF(Py_False); result = Py_False; goto done; } while (0)

    /* RoundTrip(n, p, r) */
    mpz_mul(n, ro_a, ro_b);
    mpz_mul_ui(n, n, ka);
    mpz_mul_ui(n, n, kb);
    mpz_mul(p, ri_a, ri_b);
    mpz_mul_ui(p, p, KA);
    mpz_mul_ui(p, p, KB);
    mpz_mul(r, ri_b, den_a);
    mpz_mul_ui(r, r, KB);
    mpz_mul(t, ro_a, den_b);
    mpz_mul_ui(t, t, kb);
    mpz_add(r, r, t);
    mpz_mul_ui(r, r, ka);
    if (mpz_sgn(n) <= 0 || mpz_sgn(p) <= 0 || mpz_sgn(r) <= 0)
        DECL(1);  /* (RoundTrip raises: the Python says so) */

    /* x_max = min(ca.max_in, _largest_feeding(...)) */
    mpz_mul(d, max_b, den_a);
    mpz_sub(d, ro_a, d);                      /* ro - y_max*D */
    if (mpz_cmp(d, den_a) < 0) {              /* y_max >= ro // D, without the division (D > 0) */
        mpz_set(x_max, max_a);
    } else {
        mpz_mul_ui(d, d, ka);                 /* den = ka*(ro - y_max*D) */
        if (mpz_sgn(d) <= 0) {
            mpz_set(x_max, max_a);
        } else {
            mpz_mul(u, max_b, ri_a);
            mpz_mul_ui(u, u, KA);
            floor_q(x_max, u, d);
            if (mpz_cmp(x_max, max_a) > 0)
                mpz_set(x_max, max_a);
        }
    }
    if (mpz_cmp(x_max, max_a) > 0)
        mpz_set(x_max, max_a);
    if (mpz_sgn(x_max) <= 0)
        OUT((Py_INCREF(Py_None), Py_None));

    /* below(need, x_max) */
    mpz_sub(d, n, p);
    if (mpz_sgn(d) <= 0)
        OUT((Py_INCREF(Py_None), Py_None));
    mpz_mul(t, d, x_max);
    mpz_mul(u, need, p);
    if (mpz_cmp(t, u) < 0)
        OUT((Py_INCREF(Py_None), Py_None));
    mpz_mul(t, d, d);
    mpz_mul(u, u, r);
    mpz_mul_2exp(u, u, 2);
    if (mpz_cmp(t, u) < 0)
        OUT((Py_INCREF(Py_None), Py_None));

    /* relaxed(): shift = min(bits(p), bits(r)) - 192 */
    long bp = (long)mpz_sizeinbase(p, 2), br = (long)mpz_sizeinbase(r, 2);
    long shift = (bp < br ? bp : br) - RELAXED_BITS;
    int loose_is_self = shift <= 0;
    if (loose_is_self) {
        mpz_set(nl, n);
        mpz_set(pl, p);
        mpz_set(rl, r);
    } else {
        mpz_cdiv_q_2exp(nl, n, (mp_bitcnt_t)shift);
        mpz_fdiv_q_2exp(pl, p, (mp_bitcnt_t)shift);
        mpz_fdiv_q_2exp(rl, r, (mp_bitcnt_t)shift);
    }
    /* top = loose.max_profit_bound(x_max) (its n*p and square root kept, as the Python keeps them) */
    int loose_np = 0;
    if (mpz_cmp(nl, pl) <= 0) {
        mpz_set_ui(top, 0);
    } else {
        mpz_mul(d, rl, x_max);
        mpz_add(d, d, pl);                    /* d = p + r*x_max */
        mpz_mul(np_, nl, pl);
        mpz_sqrt(root, np_);
        loose_np = 1;
        mpz_mul(t, d, d);
        if (mpz_cmp(np_, t) > 0) {
            mpz_mul(t, nl, x_max);
            mpz_submul(t, x_max, d);
            floor_q(top, t, d);
        } else {
            mpz_add_ui(t, root, 1);
            mpz_sub(t, t, pl);
            mpz_mul(t, t, t);
            mpz_mul(u, rl, pl);
            floor_q(top, t, u);
        }
    }
    if (mpz_cmp(top, need) < 0)
        OUT((Py_INCREF(Py_None), Py_None));

    /* c = min(max(trip.optimum(), 1), x_max) */
    if (loose_is_self) {                      /* trip._np set by the bound above */
        mpz_sub(t, root, p);
        floor_q(c, t, r);
    } else if (loose_np) {
        mpz_mul(np_, n, p);
        mpz_sub(t, root, pl);
        floor_q(c, t, rl);                    /* loose.optimum() */
        if (mpz_sgn(c) < 0)
            mpz_set_ui(c, 0);
        mpz_mul(t, r, c);
        mpz_add(t, t, p);                     /* t = p + r*c */
        int done_c = 0;
        for (int i = 0; i < 4; i++) {
            mpz_mul(u, t, t);
            if (mpz_cmp(u, np_) > 0) {
                mpz_sub_ui(c, c, 1);
                mpz_sub(t, t, r);
                continue;
            }
            mpz_add(d, t, r);
            mpz_mul(u, d, d);
            if (mpz_cmp(u, np_) <= 0) {
                mpz_add_ui(c, c, 1);
                mpz_set(t, d);
                continue;
            }
            done_c = 1;
            break;
        }
        if (!done_c) {
            mpz_sqrt(u, np_);
            mpz_sub(u, u, p);
            floor_q(c, u, r);
        }
    } else {
        DECL(2);
    }
    if (mpz_cmp_ui(c, 1) < 0)
        mpz_set_ui(c, 1);
    if (mpz_cmp(c, x_max) > 0)
        mpz_set(c, x_max);
    if (profit(pc, yc, zc, c))
        DECL(3);
    if (mpz_cmp(pc, need) < 0)
        DECL(4);  /* best_size's path (Python) */
    memo_start(c, pc, yc, zc);                /* (_finish's memoized profit, from c) */

    /* _finish, top down: the relaxed trip's interval of p + 1 */
    mpz_set_ui(lo, 1);
    mpz_add_ui(level, pc, 1);
    if (!level_interval(first, last, nl, pl, rl, level, lo, x_max))
        OUT(answer(c, pc, yc, zc));
    mpz_sub(t, last, first);
    if (mpz_cmp_ui(t, FINISH_SCAN - 2) >= 0) {
        /* _finish's rounds: the exact trip's interval of p + 1; as wide as FINISH_SCAN, the pattern
         * search from (c, pc) over it (a local optimum: not proven) */
        mpz_add_ui(level, pc, 1);
        if (fast_on && mpz_cmp_ui(t, 4 * FINISH_SCAN) >= 0 && inside_exactly(first, last, n, p, r, level)) {
            width_by_points++;
            /* [first + w/4, last - w/4] lies in the exact trip's interval (so that is as wide as
             * FINISH_SCAN), which lies in the relaxed one's but for one size at each end (their real
             * roots nest; each end is rounded by under 1.5): the pattern search over that, one wider
             * at each end, moves as over the exact one (a size outside the exact interval profits at
             * most pc, which no move takes), without the exact interval's ~2,400-bit square root */
            mpz_sub_ui(first, first, 1);
            if (mpz_cmp_ui(first, 1) < 0)
                mpz_set_ui(first, 1);
            mpz_add_ui(last, last, 1);
            if (mpz_cmp(last, x_max) > 0)
                mpz_set(last, x_max);
        } else {
            width_by_root++;
            mpz_set_ui(lo, 1);
            if (!level_interval(first, last, n, p, r, level, lo, x_max))
                OUT(answer(c, pc, yc, zc));
            mpz_sub(t, last, first);
            if (mpz_cmp_ui(t, FINISH_SCAN) < 0)
                DECL(5);  /* narrow: a top-down round and the whole scan's (Python) */
        }
        int at = pattern(first, last, 0);
        if (at < 0)
            DECL(12);  /* a size the quotes here do not price (Python) */
        OUT(answer_as(MEMO_X[at], MEMO_V[at], MEMO_Y[at], MEMO_Z[at], 0));
    }
    mpz_set(lo, first);
    mpz_set(hi, last);
    mpz_sub(t, top, pc);
    if (mpz_cmp_ui(t, TOP_DOWN_LEVELS) > 0)
        DECL(6);
    /* _top_down: level = top, top - 1, ..., pc + 1 */
    for (mpz_set(level, top); mpz_cmp(level, pc) > 0; mpz_sub_ui(level, level, 1)) {
        int spans;
        if (period_a > 1) {
            if (KA <= ka)
                DECL(7);
            spans = floored(nl, pl, rl, level, lo, hi, ka, KA);
            if (spans < 0)
                DECL(8);
        } else {
            spans = level_interval_exact(SPAN_LO[0], SPAN_HI[0], nl, pl, rl, level, lo, hi);
        }
        for (int s = 0; s < spans; s++) {
            for (mpz_set(xs, SPAN_LO[s]); mpz_cmp(xs, SPAN_HI[s]) <= 0;) {
                int i = priced(xs);
                if (i < 0)
                    DECL(9);
                int cmp = mpz_cmp(MEMO_V[i], level);
                if (cmp == 0)
                    OUT(answer(MEMO_X[i], MEMO_V[i], MEMO_Y[i], MEMO_Z[i]));
                if (cmp > 0)
                    DECL(10);  /* above its level: the whole scan (Python) */
                if (next_size(xs, MEMO_Z[i]))
                    DECL(11);
            }
        }
    }
    OUT(answer(c, pc, yc, zc));               /* every level above pc refuted */

done:
    return result;
#undef OUT
}

static PyObject *counts(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    PyObject *sites = PyTuple_New(16);
    for (Py_ssize_t i = 0; sites != NULL && i < 16; i++)
        PyTuple_SET_ITEM(sites, i, PyLong_FromLong(declined[i]));
    return sites == NULL ? NULL : Py_BuildValue("(llN)", answered, unproven, sites);
}

/* For the tests: (sizes the pattern search's float screen refuted, sizes it left to the exact quotes) so far;
 * screen(on) switches it (it changes no answer: the tests size both ways) */
static PyObject *screen_counts(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return Py_BuildValue("(ll)", screened, screen_priced);
}

/* a test switch (screen(), fast()) set from a Python truth value */
static PyObject *switched(int *flag, PyObject *arg)
{
    int on = PyObject_IsTrue(arg);
    if (on < 0)
        return NULL;
    *flag = on;
    Py_RETURN_NONE;
}

static PyObject *screen(PyObject *self, PyObject *arg)
{
    (void)self;
    return switched(&screen_on, arg);
}

/* (first, last) as a Python tuple of ints */
static PyObject *span_to_py(const mpz_t first, const mpz_t last)
{
    PyObject *a = to_py(first), *b = a ? to_py(last) : NULL, *t = b ? PyTuple_Pack(2, a, b) : NULL;
    Py_XDECREF(a);
    Py_XDECREF(b);
    return t;
}

/* For the tests: floored(n, p, r, level, lo, hi, keep, keep_den) as closed_form's top-down search takes it:
 * the spans as a list of (first, last), None where there are more than MAX_SPANS (not its path); with
 * keep_den 0, level_interval(n, p, r, level, lo, hi): (first, last) or None */
static PyObject *floored_spans(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *o[6];
    unsigned long k, big_d;
    if (!PyArg_ParseTuple(args, "OOOOOOkk", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &k, &big_d))
        return NULL;
    mpz_ptr z[6] = {T[37], T[38], T[39], T[40], T[41], T[42]};
    for (int i = 0; i < 6; i++)
        if (from_py(z[i], o[i])) {
            PyErr_SetString(PyExc_TypeError, "floored_spans takes ints (and two unsigned longs)");
            return NULL;
        }
    if ((big_d != 0 && (big_d <= k || k == 0)) || mpz_sgn(z[2]) <= 0 || mpz_sgn(z[1]) <= 0 || mpz_sgn(z[3]) <= 0 || mpz_sgn(z[4]) <= 0) {
        PyErr_SetString(PyExc_ValueError, "floored_spans: keep < keep_den, r, p, level and lo positive");
        return NULL;
    }
    if (big_d == 0) {                         /* (keep_den 0: level_interval's [first, last] or None instead) */
        if (!level_interval(T[43], T[44], z[0], z[1], z[2], z[3], z[4], z[5]))
            Py_RETURN_NONE;
        return span_to_py(T[43], T[44]);
    }
    int count = floored(z[0], z[1], z[2], z[3], z[4], z[5], k, big_d);
    if (count < 0)
        Py_RETURN_NONE;
    PyObject *out = PyList_New(count);
    for (int i = 0; out && i < count; i++) {
        PyObject *t = span_to_py(SPAN_LO[i], SPAN_HI[i]);
        if (t == NULL)
            Py_CLEAR(out);
        else
            PyList_SET_ITEM(out, i, t);
    }
    return out;
}

/* For the tests: (128-bit pattern searches, mpz ones, wide intervals told by two points, by the square root,
 * floored spans told by the roots' estimates, by the square root, level intervals' ends told by estimates,
 * by the square root, and of the estimated ones those the float filter decided alone: floored spans, level ends) */
static PyObject *path_counts(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return Py_BuildValue("(llllllllll)", pattern_narrow, pattern_mpz, width_by_points, width_by_root, floored_by_estimate,
                         floored_by_root, level_by_estimate, level_by_root, floored_by_float, level_by_float);
}

static PyObject *fast(PyObject *self, PyObject *arg)
{
    (void)self;
    return switched(&fast_on, arg);
}

/* For the tests: get_d_2exp(z) -> (d, e) of top_bits (mpz_get_d_2exp's value) */
static PyObject *get_d_2exp(PyObject *self, PyObject *arg)
{
    (void)self;
    if (from_py(T[0], arg)) {
        PyErr_SetString(PyExc_TypeError, "get_d_2exp takes an int");
        return NULL;
    }
    long e;
    double d = top_bits(&e, T[0]);
    return Py_BuildValue("(dl)", d, e);
}

static PyObject *float_filter(PyObject *self, PyObject *arg)
{
    (void)self;
    return switched(&float_on, arg);
}

/* For the tests: bound(leg, x) as the screen takes it (None: it cannot tell) */
static PyObject *leg_bound(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *leg, *amount;
    if (!PyArg_ParseTuple(args, "OO", &leg, &amount))
        return NULL;
    mpz_ptr a = T[0];
    if (read_leg(&LA, leg) || from_py(a, amount) || mpz_sgn(a) <= 0) {
        PyErr_Clear();
        Py_RETURN_FALSE;
    }
    leg_doubles(&LA);
    int small = mpz_sizeinbase(a, 2) <= 52;
    double dx = mpz_get_d(a);
    double q = bound(&LA, small ? dx : dx * SCREEN_UP, small);
    if (q < 0)
        Py_RETURN_NONE;
    return PyFloat_FromDouble(q);
}

/* For the tests: one leg's quote(x) and least_input(y) as closed_form prices them (None: the Python's
 * None; False: not priced here) */
static PyObject *leg_call(PyObject *args, int inverse)
{
    PyObject *leg, *amount;
    if (!PyArg_ParseTuple(args, "OO", &leg, &amount))
        return NULL;
    mpz_ptr a = T[0], out = T[1];
    if (read_leg(&LA, leg) || from_py(a, amount)) {
        PyErr_Clear();
        Py_RETURN_FALSE;
    }
    int st = inverse ? least_input(&LA, out, a) : quote(&LA, out, a);
    if (st == 1)
        Py_RETURN_NONE;
    if (st != 0)
        Py_RETURN_FALSE;
    return to_py(out);
}

static PyObject *leg_quote(PyObject *self, PyObject *args)
{
    (void)self;
    return leg_call(args, 0);
}

static PyObject *leg_least_input(PyObject *self, PyObject *args)
{
    (void)self;
    return leg_call(args, 1);
}

/* ---------------------------------------------------------------- a V3 pool's view (PoolVenue._view) */

/* TickMath.getSqrtRatioAtTick's factors (uniswap_v3._TICK_FACTORS: bit 2^(i+1) of |tick|, Q128) */
static const char *TICK_FACTOR_HEX[19] = {
    "FFF97272373D413259A46990580E213A", "FFF2E50F5F656932EF12357CF3C7FDCC", "FFE5CACA7E10E4E61C3624EAA0941CD0",
    "FFCB9843D60F6159C9DB58835C926644", "FF973B41FA98C081472E6896DFB254C0", "FF2EA16466C96A3843EC78B326B52861",
    "FE5DEE046A99A2A811C461F1969C3053", "FCBE86C7900A88AEDCFFC83B479AA3A4", "F987A7253AC413176F2B074CF7815E54",
    "F3392B0822B70005940C7A398E4B70F3", "E7159475A2C29B7443B29C7FA6E889D9", "D097F3BDFD2022B8845AD8F792AA5825",
    "A9F746462D870FDF8A65DC1F90E061E5", "70D869A156D2A1B890BB3DF62BAF32F7", "31BE135F97D08FD981231505542FCFA6",
    "9AA508B5B7A84E1C677DE54F3E99BC9", "5D6AF8DEDB81196699C329225EE604", "2216E584F5FA1EA926041BEDFE98",
    "48A170391F7DC42444E8FA2"};
static mpz_t TICK_FACTOR[19], TICK_ODD, TICK_EVEN;
#define MIN_TICK (-887272L)
#define MAX_TICK 887272L

/* the last sqrt ratios, by tick (direct-mapped: a pool's edges repeat from update to update, and a hit
 * costs ~10x fewer instructions than the 19 products; uniswap_v3's is lru_cached for the same reason) */
#define TICK_CACHE 1024
static long cached_tick[TICK_CACHE];
static mpz_t cached_ratio[TICK_CACHE];

static void sqrt_ratio_computed(mpz_t r, long tick);

/* getSqrtRatioAtTick(tick) into r (|tick| <= MAX_TICK: the caller checks), as uniswap_v3's */
static void sqrt_ratio_at_tick(mpz_t r, long tick)
{
    unsigned slot = (unsigned)((unsigned long)tick % TICK_CACHE);
    if (cached_tick[slot] != tick) {
        sqrt_ratio_computed(cached_ratio[slot], tick);
        cached_tick[slot] = tick;
    }
    mpz_set(r, cached_ratio[slot]);
}

static void sqrt_ratio_computed(mpz_t r, long tick)
{
    unsigned long at = (unsigned long)(tick < 0 ? -tick : tick);
    mpz_set(r, (at & 1) ? TICK_ODD : TICK_EVEN);
    for (int i = 0; i < 19; i++)
        if (at & (2UL << i)) {
            mpz_mul(r, r, TICK_FACTOR[i]);
            mpz_fdiv_q_2exp(r, r, 128);
        }
    if (tick > 0)
        floor_q(r, MAX_UINT256, r);
    int exact = mpz_divisible_2exp_p(r, 32);
    mpz_fdiv_q_2exp(r, r, 32);
    if (!exact)
        mpz_add_ui(r, r, 1);
}

/* Python's floor division of ticks (spacing > 0) */
static long floor_div(long a, long b)
{
    long q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static PyObject *tick_sqrt(PyObject *self, PyObject *args)
{
    (void)self;
    long tick;
    if (!PyArg_ParseTuple(args, "l", &tick))
        return NULL;
    if (tick < MIN_TICK || tick > MAX_TICK)
        Py_RETURN_NONE;
    sqrt_ratio_at_tick(T[0], tick);
    return to_py(T[0]);
}

/* v3_edge(sqrt_price, liquidity, tick, spacing, fee, zero_for_one) -> (max_in, edge sqrt price, amount to
 * it) | None: PoolVenue._view's interval edge for a price inside its tick's interval (the edge below for
 * token0 in, above for token1 in), the amount to it rounded up as SqrtPriceMath's getAmount0Delta /
 * getAmount1Delta, and the largest input that stays inside (cap + ceil(cap*fee/keep)); None for anything
 * else (a price outside its interval, arguments out of range): the Python prices it. */
/* a small int argument: 0 with *out set, -1 (no error set) for anything else */
static int long_arg(PyObject *o, long *out)
{
    if (!PyLong_CheckExact(o))
        return -1;
    *out = PyLong_AsLong(o);
    if (*out == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return -1;
    }
    return 0;
}

static PyObject *v3_edge(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    long tick, spacing, fee;
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "v3_edge takes 6 arguments");
        return NULL;
    }
    PyObject *psp = args[0], *plq = args[1];
    int zfo = PyObject_IsTrue(args[5]);
    if (zfo < 0)
        return NULL;
    if (long_arg(args[2], &tick) || long_arg(args[3], &spacing) || long_arg(args[4], &fee))
        Py_RETURN_NONE;  /* (a tick that is not a C long, say: the Python's) */
    mpz_ptr sp = T[14], lq = T[15], edge = T[16], cap = T[17], t = T[18], mx = T[19];
    if (spacing <= 0 || fee < 0 || fee >= 1000000 || tick < MIN_TICK || tick > MAX_TICK || from_py(sp, psp) ||
        from_py(lq, plq) || mpz_sgn(sp) <= 0 || mpz_sgn(lq) <= 0) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    long lower = floor_div(tick, spacing) * spacing;
    if (lower < MIN_TICK)
        lower = MIN_TICK;
    if (zfo) {
        sqrt_ratio_at_tick(edge, lower);
        if (mpz_cmp(sp, edge) < 0)
            Py_RETURN_NONE;
        mpz_sub(t, sp, edge);
        mpz_mul(t, t, lq);
        mpz_mul_2exp(t, t, 96);
        mpz_mul(cap, sp, edge);
        ceil_q(cap, t, cap);                  /* ceil(ceil((lq << 96)*(sp - sl)/sp)/sl), = ceil(../(sp*sl)) */
    } else {
        long upper = lower + spacing;
        sqrt_ratio_at_tick(edge, upper > MAX_TICK ? MAX_TICK : upper);
        if (mpz_cmp(edge, sp) < 0)
            Py_RETURN_NONE;
        mpz_sub(t, edge, sp);
        mpz_mul(t, t, lq);
        mpz_cdiv_q_2exp(cap, t, 96);          /* ceil(lq*(su - sp) / 2^96) */
    }
    mpz_mul_ui(mx, cap, (unsigned long)fee);
    ceil_q_ui(mx, mx, 1000000UL - (unsigned long)fee);
    mpz_add(mx, mx, cap);
    PyObject *a = to_py(mx), *b = a ? to_py(edge) : NULL, *c = b ? to_py(cap) : NULL;
    if (c == NULL) {
        Py_XDECREF(a);
        Py_XDECREF(b);
        return NULL;
    }
    PyObject *out = PyTuple_New(3);
    if (out == NULL) {
        Py_DECREF(a);
        Py_DECREF(b);
        Py_DECREF(c);
        return NULL;
    }
    PyTuple_SET_ITEM(out, 0, a);
    PyTuple_SET_ITEM(out, 1, b);
    PyTuple_SET_ITEM(out, 2, c);
    return out;
}

/* u*v < w*x*y by the objects' own arithmetic (product_below's arguments that are not all ints) */
static PyObject *products_compared(PyObject *const *args)
{
    PyObject *l = PyNumber_Multiply(args[0], args[1]), *r1 = l ? PyNumber_Multiply(args[2], args[3]) : NULL,
             *r = r1 ? PyNumber_Multiply(r1, args[4]) : NULL;
    PyObject *out = r ? PyObject_RichCompare(l, r, Py_LT) : NULL;
    Py_XDECREF(l);
    Py_XDECREF(r1);
    Py_XDECREF(r);
    return out;
}

/* product_below(u, v, w, x, y) -> u*v < w*x*y (arb_finder._product_below, the reference: for ints
 * decided by the factors' bit lengths where they are all positive and the lengths decide it, else
 * by the products) */
static PyObject *product_below(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "product_below takes 5 arguments");
        return NULL;
    }
    size_t bits[5];
    int positive = 1;
    for (int i = 0; i < 5; i++) {
        if (!PyLong_CheckExact(args[i]))
            return products_compared(args);
        if (_PyLong_Sign(args[i]) <= 0) {
            positive = 0;
            continue;
        }
        bits[i] = _PyLong_NumBits(args[i]);
        if (bits[i] == (size_t)-1)
            return NULL;
    }
    if (positive) {
        size_t left = bits[0] + bits[1], right = bits[2] + bits[3] + bits[4];
        if (left >= right + 2)
            Py_RETURN_FALSE;
        if (left + 3 <= right)
            Py_RETURN_TRUE;
    }
    mpz_ptr a = T[20], b = T[21], c = T[22];
    if (from_py(a, args[0]) || from_py(b, args[1]) || (mpz_mul(a, a, b), from_py(c, args[2])) ||
        from_py(b, args[3]) || (mpz_mul(c, c, b), from_py(b, args[4])))
        return NULL;  /* (exact ints: from_py fails only without memory) */
    mpz_mul(c, c, b);
    return PyBool_FromLong(mpz_cmp(a, c) < 0);
}

/* a margin tuple's two ints as mpz, kept for the last MARGINS_KEPT tuples used (the least recently used one
 * replaced; each held: an object's address is not reused while it lives): the moved pool's margin is the
 * same tuple for each of its partners */
#define MARGINS_KEPT 4
static PyObject *MARGIN_SRC[MARGINS_KEPT];
static mpz_t MARGIN_NUM[MARGINS_KEPT], MARGIN_DEN[MARGINS_KEPT];
static unsigned long margin_used[MARGINS_KEPT], margin_clock;

static int margin_kept(PyObject *t, mpz_srcptr *num, mpz_srcptr *den)
{
    int i = 0, oldest = 0;
    while (i < MARGINS_KEPT && MARGIN_SRC[i] != t) {
        if (margin_used[i] < margin_used[oldest])
            oldest = i;
        i++;
    }
    if (i == MARGINS_KEPT) {
        i = oldest;
        Py_CLEAR(MARGIN_SRC[i]);
        if (from_py(MARGIN_NUM[i], PyTuple_GET_ITEM(t, 0)) || from_py(MARGIN_DEN[i], PyTuple_GET_ITEM(t, 1)))
            return -1;
        Py_INCREF(t);
        MARGIN_SRC[i] = t;
    }
    margin_used[i] = ++margin_clock;
    *num = MARGIN_NUM[i];
    *den = MARGIN_DEN[i];
    return 0;
}

/* surplus(m, n) -> m[0]*n[0] - m[1]*n[1] for two margins (num, den) (arb_finder.on_update's exact test of
 * a round trip's margin product, on ~330-bit integers for V3 pools); anything but two pairs of ints
 * by the objects' own arithmetic */
static PyObject *surplus(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "surplus takes 2 arguments");
        return NULL;
    }
    PyObject *m = args[0], *n = args[1];
    if (!PyTuple_CheckExact(m) || !PyTuple_CheckExact(n) || PyTuple_GET_SIZE(m) != 2 || PyTuple_GET_SIZE(n) != 2 ||
        !PyLong_CheckExact(PyTuple_GET_ITEM(m, 0)) || !PyLong_CheckExact(PyTuple_GET_ITEM(m, 1)) ||
        !PyLong_CheckExact(PyTuple_GET_ITEM(n, 0)) || !PyLong_CheckExact(PyTuple_GET_ITEM(n, 1))) {
        PyObject *it[4] = {PySequence_GetItem(m, 0), PySequence_GetItem(m, 1), PySequence_GetItem(n, 0),
                           PySequence_GetItem(n, 1)};
        PyObject *l = NULL, *r = NULL, *out = NULL;
        if (it[0] && it[1] && it[2] && it[3] && (l = PyNumber_Multiply(it[0], it[2])) &&
            (r = PyNumber_Multiply(it[1], it[3])))
            out = PyNumber_Subtract(l, r);
        for (int i = 0; i < 4; i++)
            Py_XDECREF(it[i]);
        Py_XDECREF(l);
        Py_XDECREF(r);
        return out;
    }
    mpz_srcptr m0, m1, n0, n1;
    if (margin_kept(m, &m0, &m1) || margin_kept(n, &n0, &n1))
        return NULL;  /* (exact ints: from_py fails only without memory) */
    mpz_ptr a = T[20];
    mpz_mul(a, m0, n0);
    mpz_submul(a, m1, n1);
    return to_py(a);
}

/* ceil_mul_div(a, b, c) -> -((-a*b) // c), c > 0 (arb_finder's gas value in the profit token, rounded up:
 * ~250-bit by ~190-bit integers); anything but three ints (or c <= 0) by the objects' own arithmetic */
static PyObject *ceil_mul_div(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "ceil_mul_div takes 3 arguments");
        return NULL;
    }
    mpz_ptr a = T[20], b = T[21], c = T[22];
    if (!PyLong_CheckExact(args[0]) || !PyLong_CheckExact(args[1]) || !PyLong_CheckExact(args[2]) ||
        _PyLong_Sign(args[2]) <= 0) {
        PyObject *ab = PyNumber_Multiply(args[0], args[1]), *neg = ab ? PyNumber_Negative(ab) : NULL,
                 *q = neg ? PyNumber_FloorDivide(neg, args[2]) : NULL, *out = q ? PyNumber_Negative(q) : NULL;
        Py_XDECREF(ab);
        Py_XDECREF(neg);
        Py_XDECREF(q);
        return out;
    }
    if (from_py(a, args[0]) || from_py(b, args[1]) || from_py(c, args[2]))
        return NULL;
    mpz_mul(a, a, b);
    ceil_q(a, a, c);
    return to_py(a);
}

static PyMethodDef methods[] = {
    {"quote", leg_quote, METH_VARARGS, "quote(leg, x) -> the leg's exact output | False (not priced here)"},
    {"least_input", leg_least_input, METH_VARARGS,
     "least_input(leg, y) -> PoolVenue.least_input's answer (None: its None) | False (not this leg)"},
    {"screen_counts", screen_counts, METH_NOARGS,
     "screen_counts() -> (pattern-search sizes the float screen refuted, sizes it left to the exact quotes)"},
    {"path_counts", path_counts, METH_NOARGS,
     "path_counts() -> (128-bit pattern searches, mpz ones, wide intervals told by two points, by the root, floored "
     "spans by estimates, by the root, level ends by estimates, by the root, floored spans and level ends the float "
     "filter decided alone)"},
    {"floored_spans", floored_spans, METH_VARARGS,
     "floored_spans(n, p, r, level, lo, hi, keep, keep_den) -> [(first, last), ...] | None (closed_form's floored; "
     "keep_den 0: its level_interval)"},
    {"fast", fast, METH_O, "fast(on): the 128-bit pattern search, the two-point width test and the estimated ends "
     "(with their float filter) on or off (the same answers)"},
    {"get_d_2exp", get_d_2exp, METH_O, "get_d_2exp(z) -> (d, e): mpz_get_d_2exp's value, as the estimates read it"},
    {"float_filter", float_filter, METH_O,
     "float_filter(on): the estimates' float filter on or off (the same answers: each end then checked exactly)"},
    {"screen", screen, METH_O, "screen(on): the pattern search's float screen on or off (the same answers)"},
    {"bound", leg_bound, METH_VARARGS,
     "bound(leg, x) -> a float upper bound of quote(leg, x) | None (not bounded here) | False (not a leg)"},
    {"counts", counts, METH_NOARGS,
     "counts() -> (how often closed_form answered with a size, of them unproven (the pattern search), how often "
     "it declined by site: 0 its arguments, 1-12 the source's DECL sites)"},
    {"closed_form", (PyCFunction)(void (*)(void))closed_form, METH_FASTCALL,
     "closed_form(leg_a, leg_b, max_in_a, max_in_b, need) -> None | (x, profit, proven, y, z) | False (not this path)"},
    {"tick_sqrt", tick_sqrt, METH_VARARGS, "tick_sqrt(tick) -> TickMath.getSqrtRatioAtTick(tick) | None (out of range)"},
    {"v3_edge", (PyCFunction)(void (*)(void))v3_edge, METH_FASTCALL,
     "v3_edge(sqrt_price, liquidity, tick, spacing, fee, zero_for_one) -> (max_in, edge, amount to it) | None"},
    {"surplus", (PyCFunction)(void (*)(void))surplus, METH_FASTCALL,
     "surplus(m, n) -> m[0]*n[0] - m[1]*n[1] (arb_finder.on_update's margin test)"},
    {"ceil_mul_div", (PyCFunction)(void (*)(void))ceil_mul_div, METH_FASTCALL,
     "ceil_mul_div(a, b, c) -> -((-a*b) // c) (arb_finder's gas value, rounded up)"},
    {"product_below", (PyCFunction)(void (*)(void))product_below, METH_FASTCALL,
     "product_below(u, v, w, x, y) -> u*v < w*x*y (arb_finder._product_below)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_closed_form_gmp",
                                    "The finder's closed-form sizing on GMP integers (see the C source).", -1,
                                    methods};

PyMODINIT_FUNC PyInit__closed_form_gmp(void)
{
    for (int i = 0; i < NT; i++)
        mpz_init(T[i]);
    mpz_init(DIV_T);
    for (int i = 0; i < MEMO; i++)
        mpz_inits(MEMO_X[i], MEMO_V[i], MEMO_Y[i], MEMO_Z[i], NULL);
    for (int i = 0; i < MARGINS_KEPT; i++)
        mpz_inits(MARGIN_NUM[i], MARGIN_DEN[i], NULL);
    for (int i = 0; i < MAX_SPANS; i++) {
        mpz_init(SPAN_LO[i]);
        mpz_init(SPAN_HI[i]);
    }
    leg_t *legs[2] = {&LA, &LB};
    for (int i = 0; i < 2; i++)
        mpz_inits(legs[i]->a, legs[i]->b, legs[i]->target, legs[i]->raw, legs[i]->n1, legs[i]->n1sp, legs[i]->ri,
                  legs[i]->ro, legs[i]->den, NULL);
    mpz_inits(SP_U, SP_T, SP_X, LI_M, LI_SQ, LI_LP, NULL);
    mpz_init(MAX_UINT256);
    mpz_ui_pow_ui(MAX_UINT256, 2, 256);
    mpz_sub_ui(MAX_UINT256, MAX_UINT256, 1);
    mpz_init(MAX_UINT160);
    mpz_ui_pow_ui(MAX_UINT160, 2, 160);
    mpz_sub_ui(MAX_UINT160, MAX_UINT160, 1);
    mpz_inits(NX_Z1, NX_Y2, NX_X2, root, u, d, pc, yc, zc, v, y, z, lo, hi, level, first, last, xs, NULL);
    for (int i = 0; i < 19; i++)
        mpz_init_set_str(TICK_FACTOR[i], TICK_FACTOR_HEX[i], 16);
    mpz_init_set_str(TICK_ODD, "FFFCB933BD6FAD37AA2D162D1A594001", 16);
    for (int i = 0; i < TICK_CACHE; i++) {
        cached_tick[i] = LONG_MIN;  /* (no tick: MIN_TICK is far above it) */
        mpz_init(cached_ratio[i]);
    }
    mpz_init_set_ui(TICK_EVEN, 1);
    mpz_mul_2exp(TICK_EVEN, TICK_EVEN, 128);
    mpz_init(NEVER);
    mpz_ui_pow_ui(NEVER, 2, 256);
    mpz_init(MAX_INT256);
    mpz_ui_pow_ui(MAX_INT256, 2, 255);
    mpz_sub_ui(MAX_INT256, MAX_INT256, 1);
    return PyModule_Create(&module);
}
