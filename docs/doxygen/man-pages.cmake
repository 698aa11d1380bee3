# Finishes Doxygen's man pages (Usage: cmake -DDIR=<man3 directory> -P man-pages.cmake):
#   - keeps only the pages of the API's names: MAN_LINKS also writes a link page for every struct
#     field and C++ member (name.3, get.3, reset.3, ...), names that other packages' pages own;
#   - escapes a ' that begins a line (Doxygen writes the text's " as '), which troff would take
#     for a request: `"double free"` would call the macro 'double.
file(GLOB pages RELATIVE ${DIR} ${DIR}/*.3)
foreach(page IN LISTS pages)
  if(NOT page MATCHES "^(mp_|MP_|mempool)")
    file(REMOVE "${DIR}/${page}")
    continue()
  endif()
  file(READ "${DIR}/${page}" text)
  string(REGEX REPLACE "(^|\n)'" "\\1\\\\&'" fixed "${text}")
  if(NOT fixed STREQUAL text)
    file(WRITE "${DIR}/${page}" "${fixed}")
  endif()
endforeach()
