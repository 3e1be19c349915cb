# Run by `cmake --install`: writes egressd.service with ExecStart at the
# prefix being installed to (CMAKE_INSTALL_PREFIX is --prefix's value here),
# then installs it (file(INSTALL) adds DESTDIR and records it in the manifest).
foreach(var EGRESSD_BINDIR EGRESSD_SYSTEMD_UNIT_DIR)
  if(IS_ABSOLUTE "${${var}}")
    set(${var}_FULL "${${var}}")
  else()
    set(${var}_FULL "${CMAKE_INSTALL_PREFIX}/${${var}}")
  endif()
endforeach()
set(EGRESSD_INSTALLED_BINARY "${EGRESSD_BINDIR_FULL}/egressd")
configure_file("${EGRESSD_UNIT_TEMPLATE}" "${EGRESSD_UNIT_STAGING}" @ONLY)
file(INSTALL "${EGRESSD_UNIT_STAGING}" DESTINATION "${EGRESSD_SYSTEMD_UNIT_DIR_FULL}"
     FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
