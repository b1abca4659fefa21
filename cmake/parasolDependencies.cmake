# Dependencies of parasol, shared by the build and by the installed package's config file.
find_package(MPI REQUIRED COMPONENTS C CXX)
find_package(PkgConfig REQUIRED)
# Debian's PETSc.pc omits the HDF5 include directory, so hdf5-openmpi is found as well.
pkg_search_module(PETSC REQUIRED IMPORTED_TARGET GLOBAL PETSc)
pkg_search_module(HDF5 REQUIRED IMPORTED_TARGET GLOBAL hdf5-openmpi)
find_package(Eigen3 3.3 REQUIRED NO_MODULE)
find_package(ZLIB REQUIRED)
set(BLA_VENDOR OpenBLAS)
find_package(BLAS REQUIRED)
find_package(LAPACK REQUIRED)
