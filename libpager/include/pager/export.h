/* PAGER_EXPORT marks what libpager.so exports: the declarations of the
 * public headers. Everything else in the library is compiled with
 * -fvisibility=hidden, and libpager.map hides whatever the compiler still
 * makes visible (instantiations of std templates), so the library shows its
 * API and nothing of its internals, jemalloc's or libnfs's. A copy linked
 * elsewhere (the LD_PRELOAD library links it statically and exports none of
 * it) can then never bind to, or be bound by, another copy in the process.
 *
 * C and C++: pager_c.h includes it. On the consumer's side the attribute
 * only restates the default. */
#ifndef PAGER_EXPORT_H_
#define PAGER_EXPORT_H_

#ifndef PAGER_EXPORT
#define PAGER_EXPORT __attribute__((visibility("default")))
#endif

/* For what an exported class nests but does not export (Pager::Impl):
 * nested classes take their enclosing class's visibility otherwise. */
#ifndef PAGER_NO_EXPORT
#define PAGER_NO_EXPORT __attribute__((visibility("hidden")))
#endif

#endif /* PAGER_EXPORT_H_ */
