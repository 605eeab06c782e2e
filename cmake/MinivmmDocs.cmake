# The API reference: Doxygen HTML of the public headers (include/minivmm/),
# built as part of ALL with -DMINIVMM_BUILD_DOCS=ON into <build>/docs/html and
# installed into DOCDIR/html. Any Doxygen warning, an undocumented public
# entity included, fails the build.
if(NOT MINIVMM_BUILD_DOCS)
  return()
endif()
find_package(Doxygen 1.9 REQUIRED)

set(DOXYGEN_PROJECT_NAME "libminivmm")
set(DOXYGEN_PROJECT_NUMBER "${PROJECT_VERSION}")
set(DOXYGEN_PROJECT_BRIEF "${PROJECT_DESCRIPTION}")
set(DOXYGEN_OUTPUT_DIRECTORY "${PROJECT_BINARY_DIR}/docs")
set(DOXYGEN_GENERATE_HTML YES)
set(DOXYGEN_GENERATE_LATEX NO)
set(DOXYGEN_HTML_TIMESTAMP NO)
set(DOXYGEN_QUIET YES)
set(DOXYGEN_FULL_PATH_NAMES YES)
set(DOXYGEN_STRIP_FROM_PATH "${PROJECT_SOURCE_DIR}/include")
set(DOXYGEN_STRIP_FROM_INC_PATH "${PROJECT_SOURCE_DIR}/include")
set(DOXYGEN_JAVADOC_AUTOBRIEF YES)
set(DOXYGEN_DISTRIBUTE_GROUP_DOC YES)
set(DOXYGEN_EXTRACT_ALL NO)
set(DOXYGEN_EXTRACT_PRIVATE NO)
set(DOXYGEN_WARNINGS YES)
set(DOXYGEN_WARN_IF_UNDOCUMENTED YES)
set(DOXYGEN_WARN_IF_DOC_ERROR YES)
set(DOXYGEN_WARN_NO_PARAMDOC NO)
set(DOXYGEN_WARN_AS_ERROR FAIL_ON_WARNINGS)
set(DOXYGEN_USE_MDFILE_AS_MAINPAGE "${PROJECT_SOURCE_DIR}/docs/mainpage.md")
set(DOXYGEN_FILE_PATTERNS "*.hpp")
doxygen_add_docs(minivmm_docs "${PROJECT_SOURCE_DIR}/include/minivmm"
                 "${PROJECT_SOURCE_DIR}/docs/mainpage.md" ALL
                 COMMENT "API reference (Doxygen, warnings are errors)")
install(DIRECTORY "${PROJECT_BINARY_DIR}/docs/html" DESTINATION ${CMAKE_INSTALL_DOCDIR})
