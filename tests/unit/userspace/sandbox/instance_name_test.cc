#include "userspace/sandbox/instance_name.h"

#include <gtest/gtest.h>

#include <string>

namespace egressd::sandbox {
namespace {

TEST(CheckInstanceName, ContainerJobAndCgroupNamesPass) {
  for (const char* name : {"job-42", "run-1a2b3c4d", "web", "a", "...x", "x..", "my container",
                           "docker-0123abcd.scope", "kubepods-besteffort-pod1_2.slice",
                           "dev-disk-by\\x2duuid.mount", "getty@tty1.service", "ünïcode"})
    EXPECT_TRUE(CheckInstanceName(name).ok()) << name;
  EXPECT_TRUE(CheckInstanceName(std::string(255, 'x')).ok());
}

TEST(CheckInstanceName, WhatIsNotOnePathComponentIsRefused) {
  for (const std::string& name :
       {std::string(""), std::string("."), std::string(".."), std::string("a/b"),
        std::string("../etc"), std::string("/"), std::string("a\0b", 3), std::string("a\nb"),
        std::string("\x7f"), std::string(256, 'x')})
    EXPECT_FALSE(CheckInstanceName(name).ok()) << name;
}

}  // namespace
}  // namespace egressd::sandbox
