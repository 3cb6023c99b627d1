# Cython's view of domain/arb_finder.py for its compiled build (setup.py; the .py is the source and
# the reference, and runs as it is without the build). PoolVenue and ArbFinder become extension types:
# their attributes are struct fields, not an instance dict, and the finder's hot path (``on_update``,
# ``_sized``), which reads them a few hundred times per gap-opening update, calls their methods
# directly where a venue is a PoolVenue (the locals typed below; callgrind figures in BENCHMARKS.md).
# They hold the same Python objects (``object``: no int is narrowed to a C type). A new attribute of
# either class must be declared here too, or the compiled build raises AttributeError where the .py
# assigns it (tests/test_arb_finder_compiled.py runs every path compiled).
cimport cython

@cython.final
cdef class PoolVenue:
    cdef public object spec, id, venue, chain, token0, token1, gas_units, label
    cdef public object _v3_keep, _v2_keep, _period, _both, _fee, _spacing
    cdef public dict _margins, _views, _edges
    cdef public bint _v2
    @cython.locals(v2=dict, v3=dict)
    cpdef list _priced(self, state, token_in)
    cpdef list _view(self, state, token_in, key)
    cpdef margin(self, state, token_in)
    cpdef tuple _v3_margins(self, sp)
    @cython.locals(updated=dict, stale=dict, v2=dict, v3=dict)
    cpdef margins_if_fresh(self, state, s, o, now_ts, max_age_ns)
    cpdef mid(self, state, token_in)
    cpdef version(self, state)
    cpdef bint fresh(self, state, now_ts, max_age_ns)

cdef class ArbFinder:
    cdef public object max_age_ns, min_profit, gas_price_wei, priority_fee_wei, stats
    cdef public list venues, numeraires
    cdef public dict native, pairs, by_id, _partners, _sides, _quiet
    cdef public bint refute_by_capacity, compiled_sizing, scan_whole
    @cython.locals(ra=PoolVenue, pb=PoolVenue)
    cpdef list on_update(self, state, venue_id, now_ts)
    @cython.locals(blocks=dict)
    cpdef gas(self, state, legs, profit_token, now, dict memo=*)
    @cython.locals(blocks=dict)
    cpdef _gas_on(self, state, chain, units, profit_token, now, dict memo)
    @cython.locals(pv=PoolVenue)
    cpdef _gas_valued(self, state, wei, chain, profit_token, now, dict memo)
    @cython.locals(ra=PoolVenue, rb=PoolVenue)
    cpdef _sized(self, state, a, b, s, o, now, dict memo, ma, mb, hot=*, surplus=*)

cpdef double _ratio(object m)
cpdef list _view_of(PoolVenue v, state, token_in, dict memo, hot)
cpdef tuple pair_key(a, b)
