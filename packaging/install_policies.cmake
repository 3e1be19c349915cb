# Run by `cmake --install`: copies the example policies into
# $DESTDIR${EGRESSD_POLICY_DIR}, keeping every file that is already there (an
# operator's edits survive a reinstall or an upgrade).
set(dir "$ENV{DESTDIR}${EGRESSD_POLICY_DIR}")
file(MAKE_DIRECTORY "${dir}")
foreach(policy IN LISTS EGRESSD_EXAMPLE_POLICIES)
  get_filename_component(name "${policy}" NAME)
  if(EXISTS "${dir}/${name}" OR IS_SYMLINK "${dir}/${name}")
    message(STATUS "Kept (exists): ${dir}/${name}")
  else()
    message(STATUS "Installing: ${dir}/${name}")
    file(COPY "${policy}" DESTINATION "${dir}"
         FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
  endif()
endforeach()
