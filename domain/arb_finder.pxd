# Cython's view of domain/arb_finder.py for its compiled build (setup.py; the .py is the source and
# the reference, and runs as it is without the build). PoolVenue becomes an extension type: its
# attributes are struct fields, not an instance dict, for the finder's hot path, which reads them a
# few hundred times per gap-opening update (callgrind: 7% fewer instructions on those updates). They
# hold the same Python objects (``object``: no int is narrowed to a C type). A new PoolVenue attribute
# must be declared here too, or the compiled build raises AttributeError where the .py assigns it
# (tests/test_arb_finder_compiled.py runs every path compiled).
cdef class PoolVenue:
    cdef public object spec, id, venue, chain, token0, token1, gas_units, label
    cdef public object _v3_keep, _v2_keep, _period, _margins, _views, _edges, _both, _fee, _spacing
    cdef public bint _v2
    cpdef list _priced(self, state, token_in)
    cpdef list _view(self, state, token_in, key)
    cpdef margin(self, state, token_in)
    cpdef margins_if_fresh(self, state, s, o, now_ts, max_age_ns)
    cpdef mid(self, state, token_in)
    cpdef version(self, state)
    cpdef bint fresh(self, state, now_ts, max_age_ns)
cpdef double _ratio(object m)
