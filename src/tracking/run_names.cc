#include "src/tracking/run_names.h"

#include <random>

namespace keel::tracking::internal {
namespace {

constexpr const char* kAdjectives[] = {
    "abundant", "agreeable", "amazing",  "auspicious", "bold",     "brawny",  "bright",
    "calm",     "capable",   "casual",   "clean",      "clever",   "colorful", "crawling",
    "dapper",   "debonair",  "delicate", "eager",      "efficient", "enchanting", "fearless",
    "gentle",   "gifted",    "glamorous", "grandiose", "honorable", "illustrious", "industrious",
    "invincible", "judicious", "kindly", "luxuriant",  "magnificent", "melodic", "mercurial",
    "nebulous", "omniscient", "orderly", "painted",    "polite",   "powerful", "puzzled",
    "redolent", "resilient", "rogue",    "rumbling",   "salty",    "secretive", "selective",
    "sincere",  "skillful",  "smiling",  "stately",    "suave",    "thoughtful", "traveling",
    "trusting", "unequaled", "upbeat",   "useful",     "valuable", "vaunted",  "victorious",
    "welcoming", "wise",     "youthful", "zealous"};
constexpr const char* kNouns[] = {
    "ant",    "ape",    "asp",     "auk",    "bass",   "bat",    "bear",   "bee",    "bird",
    "boar",   "bug",    "calf",    "carp",   "cat",    "chimp",  "cod",    "colt",   "conch",
    "cow",    "crab",   "crane",   "croc",   "crow",   "cub",    "deer",   "doe",    "dog",
    "dolphin", "donkey", "dove",   "duck",   "eel",    "elk",    "fawn",   "finch",  "fish",
    "flea",   "fly",    "foal",    "fowl",   "fox",    "frog",   "gnat",   "gnu",    "goat",
    "goose",  "grouse", "grub",    "gull",   "hare",   "hawk",   "hen",    "hog",    "horse",
    "hound",  "jay",    "kit",     "kite",   "koi",    "lamb",   "lark",   "loon",   "lynx",
    "mare",   "midge",  "mink",    "mole",   "moose",  "moth",   "mouse",  "mule",   "newt",
    "owl",    "ox",     "panda",   "penguin", "perch", "pig",    "pug",    "quail",  "ram",
    "rat",    "ray",    "robin",   "roo",    "rook",   "seal",   "shad",   "shark",  "sheep",
    "shoat",  "shrew",  "shrike",  "shrimp", "skink",  "skunk",  "sloth",  "slug",   "smelt",
    "snail",  "snake",  "snipe",   "sow",    "sponge", "squid",  "squirrel", "stag", "steed",
    "stoat",  "stork",  "swan",    "tern",   "toad",   "trout",  "turtle", "vole",   "wasp",
    "whale",  "wolf",   "worm",    "wren",   "yak",    "zebra"};

}  // namespace

std::string GenerateRunName() {
  thread_local std::mt19937 rng(std::random_device{}());
  std::uniform_int_distribution<size_t> adj(0, std::size(kAdjectives) - 1);
  std::uniform_int_distribution<size_t> noun(0, std::size(kNouns) - 1);
  std::uniform_int_distribution<int> num(0, 999);
  return std::string(kAdjectives[adj(rng)]) + "-" + kNouns[noun(rng)] + "-" +
         std::to_string(num(rng));
}

}  // namespace keel::tracking::internal
