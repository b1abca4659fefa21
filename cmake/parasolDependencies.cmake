# Dependencies of parasol, shared by the build and by the installed package's config file.
# Only the C++ bindings are linked; C is asked for too when the project enables it (parasol's
# own build), so that a C++-only consumer project finds the installed package.
get_property(_parasol_languages GLOBAL PROPERTY ENABLED_LANGUAGES)
if("C" IN_LIST _parasol_languages)
  find_package(MPI REQUIRED COMPONENTS C CXX)
else()
  find_package(MPI REQUIRED COMPONENTS CXX)
endif()
find_package(PkgConfig REQUIRED)
# Debian's PETSc.pc omits the HDF5 include directory, so hdf5-openmpi is found as well.
pkg_search_module(PETSC REQUIRED IMPORTED_TARGET GLOBAL PETSc)
pkg_search_module(HDF5 REQUIRED IMPORTED_TARGET GLOBAL hdf5-openmpi)
find_package(Eigen3 3.3 REQUIRED NO_MODULE)
find_package(ZLIB REQUIRED)
set(BLA_VENDOR OpenBLAS)
find_package(BLAS REQUIRED)
find_package(LAPACK REQUIRED)
