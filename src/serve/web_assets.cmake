# The web UI (web/) is compiled into libcogumi, so an installed `cogumi serve` serves it without
# the source tree. Included from src/CMakeLists.txt after add_library(cogumi).
include("${CMAKE_CURRENT_LIST_DIR}/web_patterns.cmake")
set(_cogumi_web_globs "")
foreach(p IN LISTS COGUMI_WEB_PATTERNS)
  list(APPEND _cogumi_web_globs "${CMAKE_SOURCE_DIR}/web/${p}")
endforeach()
file(GLOB COGUMI_WEB_FILES CONFIGURE_DEPENDS ${_cogumi_web_globs})
set(COGUMI_WEB_CPP "${CMAKE_CURRENT_BINARY_DIR}/web_assets.cpp")
add_custom_command(
  OUTPUT "${COGUMI_WEB_CPP}"
  COMMAND ${CMAKE_COMMAND} -DWEB_DIR=${CMAKE_SOURCE_DIR}/web -DOUT=${COGUMI_WEB_CPP}
          -P ${CMAKE_CURRENT_LIST_DIR}/embed_web.cmake
  DEPENDS ${COGUMI_WEB_FILES} ${CMAKE_CURRENT_LIST_DIR}/embed_web.cmake
          ${CMAKE_CURRENT_LIST_DIR}/web_patterns.cmake
  COMMENT "Embedding the web UI (web/)"
  VERBATIM)
target_sources(cogumi PRIVATE "${COGUMI_WEB_CPP}")
