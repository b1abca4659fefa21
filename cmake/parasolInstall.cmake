install(TARGETS parasol EXPORT parasolTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY include/parasol DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  FILES_MATCHING PATTERN "*.hpp")
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/include/parasol/version.hpp
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/parasol)
install(EXPORT parasolTargets NAMESPACE parasol::
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/parasol)
include(CMakePackageConfigHelpers)
configure_package_config_file(cmake/parasolConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/parasolConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/parasol)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/parasolConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES
  ${CMAKE_CURRENT_BINARY_DIR}/parasolConfig.cmake
  ${CMAKE_CURRENT_BINARY_DIR}/parasolConfigVersion.cmake
  cmake/parasolDependencies.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/parasol)

# The analysis tool (python/): the package under share/parasol/python, its wrapper in bin/.
install(DIRECTORY python/parasol_analysis DESTINATION ${CMAKE_INSTALL_DATADIR}/parasol/python
  PATTERN __pycache__ EXCLUDE)
install(PROGRAMS python/parasol-analysis DESTINATION ${CMAKE_INSTALL_BINDIR})
