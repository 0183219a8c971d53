# Debian packages with CPack: `cpack -G DEB` in the build directory makes
#   libpager_<version>_<arch>.deb      libpager.so.*, libpager_preload.so, pagerctl, man pages
#   libpager-dev_<version>_<arch>.deb  headers, CMake package config, libpager.pc, libpager.so
# from the `runtime` and `dev` install components, under /usr.
# tests/install/deb_test.sh builds, installs, uses and removes them.
#
# Depends are computed by dpkg-shlibdeps from the ELF files (libc6, libnfs13,
# libjemalloc2, libboost-program-options1.74.0, libmicrohttpd12, ...), so
# they follow what is actually linked. libpager-dev adds libjemalloc-dev:
# a consumer links -ljemalloc (docs/reserve.md, "library mode").
#
# The package names follow the request in issue 13, not Debian's library
# policy, which would name the runtime package after the SONAME (libpager0.1)
# and put pagerctl in a package of its own.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME libpager)
set(CPACK_PACKAGE_VENDOR libpager)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "libpager developers")
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)  # shlibs file, and ldconfig on install and removal
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL runtime dev)

set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME libpager)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SECTION libs)
set(CPACK_DEBIAN_RUNTIME_DESCRIPTION
  "user-space paging of a program's memory to local or NFS swap
 libpager keeps one program's memory under a limit by paging it, from user
 space, to a swap file in a local directory or on an NFS server (libnfs):
 no kernel module, no NFS mount, no system-wide swap.
 .
 This package has the library, libpager_preload.so to page unmodified
 programs, and pagerctl to run, watch, export (Prometheus) and check them.")

set(CPACK_DEBIAN_DEV_PACKAGE_NAME libpager-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS "libjemalloc-dev")
set(CPACK_COMPONENT_DEV_DEPENDS runtime)
set(CPACK_DEBIAN_ENABLE_COMPONENT_DEPENDS ON)  # Depends: libpager (= version)
set(CPACK_DEBIAN_DEV_DESCRIPTION
  "user-space paging of a program's memory: development files
 Headers (pager/pager.h, pager/pager_c.h, ...), find_package(libpager) and
 libpager.pc for programs that use libpager.")

include(CPack)
